"""`manage.py demo_setup`: demo data for the README's first command.

It lives in billing, the app every other app is upstream of, because it
touches all of them (like onboarding). Safe to run again: the product,
catalog, companies and usage are upserted (usage through idempotency keys),
while the admin password and the API key are new on every run — printed once
and stored only as hashes."""

from __future__ import annotations

import os
import random
import secrets
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from companies.models import Account, CompanyStatus, Product, ProductLink
from companies.services import (
    SmartLinkStatus,
    account_update,
    api_key_create,
    company_create,
    company_smart_link,
    company_update,
    contacts_bulk_upsert,
)
from config.errors import ApplicationError
from credits.services import credits_debit, credits_grant, credits_refund, wallet_get_or_create, wallet_threshold_set
from companies.actors import Actor
from entitlements.models import Feature, Tier
from entitlements.services import feature_access_set, tier_apply
from metering.services import TrackRequest, usage_track_batch
from notifications.models import WebhookEndpoint
from notifications.services import endpoint_create

DEMO_PRODUCT = {"code": "chat", "name": "Chat App"}
DEMO_CATALOG = Path(settings.BASE_DIR) / "entitlements" / "catalogs" / "demo.json"
# A second product in the same customer pool ("customerPool": "demo-customers"
# in both catalog files): it finds the chat app's customers by smart link and
# shares the company records, each product with its own account.
DEMO_POOL_PRODUCT_CATALOG = Path(settings.BASE_DIR) / "entitlements" / "catalogs" / "demo_crm.json"
DEMO_POOL_SHARED = 5
# Segments of the chat app (SPEC §8), loaded and synced through insights'
# commands (insights sits right of billing: commands, not imports).
DEMO_SEGMENTS = Path(settings.BASE_DIR) / "insights" / "demo_segments.json"  # how many chat customers the CRM app also serves
USAGE_DAYS = 30
QUIET_DAYS = 16
DEMO_MODELS = ("gpt-4o", "gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku")
DEMO_PLATFORMS = ("web", "web", "ios", "android")
DEMO_HOURS = (2, 7, 8, 9, 9, 10, 10, 10, 11, 13, 14, 14, 15, 16, 17, 20)
# Issue 14: the external org id of the demo's duplicate of Initech (ready to merge).
DEMO_DUPLICATE_ORG = "import_initech_1"
# Where the demo's webhook endpoint points: run the receiver of the README there
# (`python -m tests.notifications.receiver --port 9000`); until then its
# deliveries fail and are retried, which the admin shows too.
DEMO_WEBHOOK_URL = "http://127.0.0.1:9000/hooks"

# name, domain, status, MRR in cents, (contact name, role) — the first contact is primary.
# The customer profile of SPEC §3 (shared in the pool) and billing details (the chat app's account).
DEMO_PROFILES = {
    "acme.com": ("US", "Manufacturing", "mid_market", "America/New_York", "en-US"),
    "globex.de": ("DE", "Energy", "enterprise", "Europe/Berlin", "de-DE"),
    "initech.io": ("US", "Software", "smb", "America/Chicago", "en-US"),
    "umbrella.co.uk": ("GB", "Pharmaceuticals", "enterprise", "Europe/London", "en-GB"),
    "hooli.xyz": ("US", "Software", "enterprise", "America/Los_Angeles", "en-US"),
    "stark.com": ("US", "Defense", "enterprise", "America/New_York", "en-US"),
    "wayne-enterprises.com": ("US", "Conglomerate", "enterprise", "America/New_York", "en-US"),
    "soylent.com": ("US", "Food", "mid_market", "America/New_York", "en-US"),
    "cyberdyne.ai": ("US", "Robotics", "startup", "America/Los_Angeles", "en-US"),
    "tyrell.com": ("US", "Biotech", "enterprise", "America/Los_Angeles", "en-US"),
    "wonka.com": ("GB", "Food", "smb", "Europe/London", "en-GB"),
    "piedpiper.com": ("US", "Software", "startup", "America/Los_Angeles", "en-US"),
    "vandelay.com": ("US", "Import/Export", "smb", "America/New_York", "en-US"),
    "dundermifflin.com": ("US", "Paper", "smb", "America/New_York", "en-US"),
}


def _demo_profile(domain: str) -> dict:
    if domain not in DEMO_PROFILES:
        return {}
    country, industry, size, time_zone, locale = DEMO_PROFILES[domain]
    return {
        "country": country, "industry": industry, "size": size, "timezone": time_zone, "locale": locale,
        "billing_email": f"billing@{domain}",
        "billing_address": {"line1": "1 Main Street", "city": "Springfield", "country": country},
    }


DEMO_COMPANIES = [
    ("Acme Inc", "acme.com", "active", 49_00, [("Alice Carter", "CEO"), ("Bob Nguyen", "CTO")]),
    ("Globex GmbH", "globex.de", "active", 199_00, [("Greta Vogel", "Head of Support")]),
    ("Initech LLC", "initech.io", "at_risk", 49_00, [("Peter Gibbons", "Engineer"), ("Bill Lumbergh", "VP")]),
    ("Umbrella Ltd", "umbrella.co.uk", "active", 499_00, [("Alice Abernathy", "COO")]),
    ("Hooli", "hooli.xyz", "active", 999_00, [("Gavin Belson", "CEO"), ("Denpok Singh", "Advisor")]),
    ("Stark Industries", "stark.com", "active", 1_999_00, [("Pepper Potts", "CEO")]),
    ("Wayne Enterprises", "wayne-enterprises.com", "active", 1_499_00, [("Lucius Fox", "CTO")]),
    ("Soylent Corp", "soylent.com", "churned", 0, [("Sol Roth", "Researcher")]),
    ("Cyberdyne Systems", "cyberdyne.ai", "prospect", 0, [("Miles Dyson", "Director")]),
    ("Tyrell Corporation", "tyrell.com", "active", 799_00, [("Eldon Tyrell", "Founder")]),
    ("Wonka Industries", "wonka.com", "active", 299_00, [("Charlie Bucket", "Owner")]),
    ("Pied Piper", "piedpiper.com", "active", 49_00, [("Richard Hendricks", "CEO"), ("Monica Hall", "Partner")]),
    ("Vandelay Industries", "vandelay.com", "at_risk", 49_00, [("Art Vandelay", "Importer")]),
    ("Dunder Mifflin", "dundermifflin.com", "active", 149_00, [("Pam Beesly", "Office Manager")]),
    ("Bluth Company", "bluthcompany.com", "churned", 0, [("Michael Bluth", "President")]),
    ("Oscorp", "oscorp.com", "prospect", 0, [("Norman Osborn", "CEO")]),
    ("Massive Dynamic", "massivedynamic.com", "active", 2_499_00, [("Nina Sharp", "COO")]),
    ("Prestige Worldwide", "prestigeworldwide.com", "active", 19_00, [("Brennan Huff", "Co-founder")]),
    ("Nakatomi Trading", "nakatomi.jp", "active", 399_00, [("Joseph Takagi", "President")]),
    ("Gringotts Bank", "gringotts.co.uk", "active", 899_00, [("Griphook Goblin", "Teller")]),
]



def _email(person: str, domain: str) -> str:
    return f"{person.split()[0].lower()}@{domain}"


class Command(BaseCommand):
    help = "Create demo data (catalog, ~20 companies, 30 days of usage), an admin user and an API key; print both once."

    def add_arguments(self, parser):
        parser.add_argument("--no-credentials", action="store_true", help="Only the data; no admin/key.")
        parser.add_argument(
            "--base-url", default=f"http://127.0.0.1:{os.environ.get('PORT') or 8000}",
            help="Where the back office will be served, for the printed links (default: port $PORT or 8000).",
        )

    def handle(self, *args, **options):
        product, _ = Product.objects.update_or_create(
            code=DEMO_PRODUCT["code"], defaults={"name": DEMO_PRODUCT["name"]}
        )
        call_command("load_catalog", str(DEMO_CATALOG), stdout=self.stderr, stderr=self.stderr)
        call_command("load_catalog", str(DEMO_POOL_PRODUCT_CATALOG), stdout=self.stderr, stderr=self.stderr)
        self.webhook_secret = self._create_webhook_endpoint(product)
        created = self._create_companies(product)
        tiers_applied = self._apply_tiers(product)
        # The promotion comes before the usage: tracked after it, the usage its tier
        # refused on a first run would be admitted on a second (runs must add nothing).
        self._promotion(product)
        events = self._track_usage(product)
        movements = self._credit_history(product)
        billed = self._billing_history(product)
        self._suspension(product)
        duplicate = self._duplicate_pair(product)
        shared = self._share_in_pool(Product.objects.get(code="crm"))
        # insights sits right of billing: through its command, not an import
        # (12 months of revenue snapshots, health scores; before the segments that read health).
        call_command("demo_insights", product.code, stdout=self.stderr)
        call_command("load_segments", str(DEMO_SEGMENTS), stdout=self.stderr)
        call_command("sync_segments", "--product", product.code, stdout=self.stderr)
        self.stderr.write(
            f"Demo data: product '{product.code}', {created} new companies, tiers applied to {tiers_applied}, "
            f"{events} new usage events, {movements} new credit movements, {billed}; product 'crm' (same customer pool) "
            f"shares {shared} of the companies. {duplicate}"
        )
        if not options["no_credentials"]:
            self._print_credentials(product, base_url=options["base_url"].rstrip("/"))

    def _create_webhook_endpoint(self, product: Product) -> str | None:
        """A webhook endpoint for the usage and access events the demo data
        causes (its secret is printed with the credentials when created)."""
        if WebhookEndpoint.objects.filter(product=product, url=DEMO_WEBHOOK_URL).exists():
            return None
        endpoint = endpoint_create(
            product=product,
            url=DEMO_WEBHOOK_URL,
            event_types=["usage.threshold_reached", "usage.limit_reached", "feature_access.changed"],
            description="Demo receiver (python -m tests.notifications.receiver --port 9000)",
        )
        return endpoint.secret

    def _create_companies(self, product: Product) -> int:
        created = 0
        for name, domain, status, mrr, people in DEMO_COMPANIES:
            external_org_id = f"org_{domain.split('.')[0].replace('-', '_')}"
            if ProductLink.objects.filter(product=product, external_org_id=external_org_id).exists():
                continue
            with transaction.atomic():
                first_name, _ = people[0]
                company = company_create(
                    product_id=product.pk,
                    name=name,
                    domain=domain,
                    external_org_id=external_org_id,
                    external_user_id=f"user_{first_name.split()[0].lower()}",
                    contact_email=_email(first_name, domain),
                    contact_name=first_name,
                    metadata={"source": "demo"},
                    profile=_demo_profile(domain),
                )
                company_update(company=company, product_id=product.pk, status=CompanyStatus(status), mrr=mrr)
                contacts_bulk_upsert(
                    company=company,
                    contacts=[{"email": _email(person, domain), "name": person, "role": role} for person, role in people],
                )
            created += 1
        return created

    def _share_in_pool(self, crm: Product) -> int:
        """The CRM app onboards a few of the chat app's customers by smart
        link (same pool: it finds them by domain) with its own metadata."""
        shared = 0
        for name, domain, *_ in DEMO_COMPANIES[:DEMO_POOL_SHARED]:
            result = company_smart_link(
                product_id=crm.pk, external_org_id=f"crm_{domain.split('.')[0]}", company_name=name, domain=domain
            )
            if result.status in (SmartLinkStatus.LINKED, SmartLinkStatus.ALREADY_LINKED):
                account_update(company=result.company, product_id=crm.pk, metadata={"source": "demo-crm"})
                shared += 1
        return shared

    def _demo_links(self, product: Product):
        return (
            ProductLink.objects.filter(product=product, external_org_id__startswith="org_")
            .select_related("company")
            .order_by("external_org_id")
        )

    def _mrr_by_company(self, product: Product) -> dict:
        return dict(Account.objects.filter(product=product).values_list("company_id", "mrr"))

    def _apply_tiers(self, product: Product) -> int:
        """Paying companies get the paid tiers in turn, the others the first (free) one."""
        tiers = list(Tier.objects.filter(product=product, is_active=True).order_by("display_order", "code"))
        actor = Actor.system("demo_setup")
        applied = 0
        mrr_of = self._mrr_by_company(product)
        for index, link in enumerate(self._demo_links(product)):
            tier = tiers[index % len(tiers)] if mrr_of.get(link.company_id) else tiers[0]
            tier_apply(company=link.company, tier=tier, actor=actor, reason="demo data")
            applied += 1
        return applied

    def _promotion(self, product: Product) -> None:
        """Issue 14: the second demo company has a temporary override (a
        promotion raising its AI credit limit for 30 days, falling back to
        its tier after)."""
        links = list(self._demo_links(product))
        if len(links) < 3:
            return
        feature = Feature.objects.filter(product=product, code="ai_credit").first()
        if feature is not None:
            feature_access_set(
                company=links[1].company,
                feature=feature,
                changes={"quantity_limit": 5000, "source": "promotion", "valid_until": timezone.now() + timedelta(days=30)},
                actor=Actor.system("demo_setup"),
                reason="Demo: Black Friday bonus, back to the tier after 30 days",
            )

    def _suspension(self, product: Product) -> None:
        """Issue 14: the last demo company is a suspended account."""
        links = list(self._demo_links(product))
        if len(links) < 3:
            return
        if Account.objects.filter(company=links[-1].company, product=product, status="suspended").exists():
            return
        # desk sits right of billing: through its command, not an import.
        call_command(
            "suspend_account", product.code, links[-1].external_org_id, reason="Demo: payment dispute", stdout=self.stderr
        )

    def _duplicate_pair(self, product: Product) -> str:
        """Issue 14: a duplicate ready to merge — an import made "Initech
        (import)" next to Initech, with a contact both have, one of its own,
        a little usage and promotional credits (SPEC §3 Merge: admin *Merge
        into…* on its page, or POST /companies/{id}/merge). Not merged here."""
        original = ProductLink.objects.filter(product=product, external_org_id="org_initech").select_related("company").first()
        if original is None:
            return ""
        hint = "Duplicate ready to merge: 'Initech (import)' (shortId {}) into '{}' ({})."
        existing = ProductLink.objects.filter(product=product, external_org_id=DEMO_DUPLICATE_ORG).select_related("company").first()
        if existing is not None:
            if existing.company.merged_into_id is None and existing.company_id != original.company_id:
                return hint.format(existing.company.short_id, original.company.name, original.company.short_id)
            return ""
        primary = original.company.contacts.filter(is_primary=True).first()
        with transaction.atomic():
            duplicate = company_create(
                product_id=product.pk,
                name="Initech (import)",
                external_org_id=DEMO_DUPLICATE_ORG,
                contact_email=primary.email if primary else "billing@initech.io",
                contact_name=primary.name if primary else "Billing",
                metadata={"source": "demo-import"},
            )
            contacts_bulk_upsert(company=duplicate, contacts=[{"email": "milton.waddams@initech.io", "name": "Milton Waddams"}])
            free = Tier.objects.filter(product=product, is_active=True).order_by("display_order", "code").first()
            if free is not None:
                tier_apply(company=duplicate, tier=free, actor=Actor.system("demo_setup"), reason="demo data: import")
        usage_track_batch(
            product_id=product.pk,
            requests=[TrackRequest(feature_code="messages", quantity=5, company_id=duplicate.pk, idempotency_key=f"demo-dup-{n}") for n in range(3)],
        )
        credits_grant(
            company_id=duplicate.pk, product_id=product.pk, amount=40, bucket="promotional",
            reason="Demo: welcome credits of the import", actor="system:demo_setup",
        )
        return hint.format(duplicate.short_id, original.company.name, original.company.short_id)

    def _track_usage(self, product: Product) -> int:
        """A month of daily usage per company, so the admin's usage charts have
        something to show. Idempotency keys make a second run add nothing;
        events past a free tier's limit are refused, as in real life."""
        rng = random.Random(42)
        today = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
        requests = []
        mrr_of = self._mrr_by_company(product)
        # The demo's at-risk customers stopped using the product 16 days ago
        # (their health's usage trend and recency show it).
        quiet = {f"org_{domain.split('.')[0].replace('-', '_')}" for _, domain, status, *_ in DEMO_COMPANIES if status == "at_risk"}
        for link in self._demo_links(product):
            scale = 1 + mrr_of.get(link.company_id, 0) // 10_000
            for days_ago in range(USAGE_DAYS, 0, -1):
                day = today - timedelta(days=days_ago)
                for feature_code, base in (("ai_credit", 3), ("messages", 40)):
                    requests.append(
                        TrackRequest(
                            feature_code=feature_code,
                            company_id=link.company_id,
                            quantity=rng.randint(1, base * scale),
                            timestamp=day,
                            idempotency_key=f"demo:{link.external_org_id}:{feature_code}:{day.date()}",
                        )
                    )
                # AI credits by model and platform (the catalog's dimensions), at
                # office hours more than at night: the admin's dimension and
                # peak-hour panel and /usage/stats?dimension= have data.
                for n in range(rng.randint(1, 3)):
                    requests.append(
                        TrackRequest(
                            feature_code="ai_credit",
                            company_id=link.company_id,
                            quantity=rng.randint(1, 2 * scale),
                            timestamp=day.replace(hour=rng.choice(DEMO_HOURS), minute=rng.randint(0, 59)),
                            metadata={"model": rng.choice(DEMO_MODELS), "platform": rng.choice(DEMO_PLATFORMS)},
                            idempotency_key=f"demo:{link.external_org_id}:ai_credit:{day.date()}:{n}",
                        )
                    )
        # Dropped after drawing (the random stream stays the same for the others).
        quiet_ids = {link.company_id for link in self._demo_links(product) if link.external_org_id in quiet}
        quiet_from = (today - timedelta(days=QUIET_DAYS - 1)).date()
        requests = [r for r in requests if not (r.company_id in quiet_ids and r.timestamp.date() >= quiet_from)]
        actor = Actor.system("demo_setup")
        ok = 0
        for start in range(0, len(requests), 1000):
            results = usage_track_batch(product_id=product.pk, requests=requests[start : start + 1000], actor=actor)
            ok += sum(result.status == "ok" for result in results)
        return ok

    def _billing_history(self, product: Product) -> str:
        """What Stripe's webhooks would have mirrored for the first paying
        company (no Stripe in the demo): its customer, the pro prices, two
        paid monthly invoices and a credit purchase — so that invoices show on
        its page and a statement (*Send statement…*, GET /billing/statement)
        has base fees, priced usage and a purchase. Idempotent by Stripe ids."""
        from billing.models import BillingProfile, CreditPurchase, Invoice, Price, PurchaseStatus
        from credits.services import credits_purchase_land

        link = next((link for link in self._demo_links(product) if self._mrr_by_company(product).get(link.company_id)), None)
        tier = Tier.objects.filter(product=product, code="pro").first()
        if link is None or tier is None:
            return "no billing history"
        company, now = link.company, timezone.now()
        customer = f"cus_demo_{company.short_id}"[:60]
        BillingProfile.objects.get_or_create(company=company, product=product, defaults={"stripe_customer_id": customer})
        Price.objects.update_or_create(stripe_price_id=tier.base_fee_stripe_price_id, defaults={
            "stripe_product_id": "prod_demo_chat", "product_name": "Chat App Pro", "unit_amount": tier.base_fee_unit_amount,
            "currency": tier.base_fee_currency, "interval": "month", "interval_count": 1, "usage_type": "licensed"})
        Price.objects.update_or_create(stripe_price_id="price_chat_ai_credit", defaults={
            "stripe_product_id": "prod_demo_chat", "product_name": "AI credits", "unit_amount": 2,
            "currency": tier.base_fee_currency, "interval": "month", "interval_count": 1, "usage_type": "metered"})
        this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        last_month = (this_month - timedelta(days=1)).replace(day=1)
        next_month = (this_month + timedelta(days=32)).replace(day=1)
        for number, (start, end) in enumerate([(last_month, this_month), (this_month, next_month)], start=1):
            stripe_id = f"in_demo_{company.short_id}_{start:%Y%m}"[:60]
            line = {"description": f"1 × {tier.name} (at {tier.base_fee_unit_amount / 100:.2f} / month)", "quantity": 1,
                    "unitAmount": tier.base_fee_unit_amount, "amount": tier.base_fee_unit_amount,
                    "priceId": tier.base_fee_stripe_price_id, "periodStart": start.isoformat().replace("+00:00", "Z"),
                    "periodEnd": end.isoformat().replace("+00:00", "Z"), "proration": False}
            Invoice.objects.update_or_create(stripe_invoice_id=stripe_id, defaults={
                "company": company, "product": product, "stripe_customer_id": customer, "number": f"DEMO-{number:04d}",
                "status": "paid", "billing_reason": "subscription_cycle" if number > 1 else "subscription_create",
                "currency": tier.base_fee_currency, "subtotal": tier.base_fee_unit_amount, "total": tier.base_fee_unit_amount,
                "amount_paid": tier.base_fee_unit_amount, "amount_due": tier.base_fee_unit_amount, "period_start": start,
                "period_end": end, "lines": [line], "paid_at": start, "stripe_created_at": start,
                "hosted_invoice_url": f"https://invoice.stripe.com/i/demo/{stripe_id}",
                "invoice_pdf": f"https://pay.stripe.com/invoice/demo/{stripe_id}/pdf"})
        intent = f"pi_demo_{company.short_id}"[:60]
        purchase, _ = CreditPurchase.objects.get_or_create(stripe_payment_intent_id=intent, defaults={
            "company": company, "product": product, "credits": 1000, "amount": 900, "currency": tier.base_fee_currency,
            "status": PurchaseStatus.SUCCEEDED, "succeeded_at": now, "actor": "demo_setup"})
        landed = credits_purchase_land(company_id=company.pk, product_id=product.pk, credits=purchase.credits,
                                       payment_intent_id=intent, actor="demo_setup",
                                       description="1000 credits purchased (9.00 EUR)")
        if purchase.ledger_entry_id != landed.entry.pk:
            CreditPurchase.objects.filter(pk=purchase.pk).update(ledger_entry_id=landed.entry.pk)
        return f"2 invoices and a credit purchase for {company.name}"

    def _credit_history(self, product: Product) -> int:
        """A month of wallet history for the paying companies: welcome and
        top-up grants, the current cycle's subscription credits, daily debits
        of an image renderer (sized so that none is refused, which keeps a
        second run a no-op), and a refund. Grants are once per reason and debits
        idempotent by jobId, so a second run adds nothing."""
        rng = random.Random(7)
        now = timezone.now()
        cycle_end = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)
        written = 0
        mrr_of = self._mrr_by_company(product)
        for link in self._demo_links(product):
            company = link.company
            mrr = mrr_of.get(company.pk, 0)
            if not mrr:
                continue
            grants = [
                (USAGE_DAYS, "promotional", 500, "Welcome credits", None),
                (USAGE_DAYS - 10, "topup", 1500 + mrr // 20, "Top-up (demo)", None),
                (3, "subscription", 1000, f"Subscription credits {now:%Y-%m}", cycle_end),
            ]
            events = [(days, ("grant", g)) for days, *g in grants]
            events += [(days, ("debit", days)) for days in range(USAGE_DAYS, 0, -1)]
            for days_ago, (kind, args) in sorted(events, key=lambda e: (-e[0], e[1][0] != "grant")):
                at = now - timedelta(days=days_ago, hours=rng.randint(0, 3) if kind == "debit" else 4)
                try:
                    if kind == "grant":
                        bucket, amount, reason, expires_at = args
                        result = credits_grant(
                            company_id=company.pk, product_id=product.pk, amount=amount, reason=reason,
                            bucket=bucket, expires_at=expires_at, actor="system:demo_setup", recorded_at=at,
                        )
                        written += result.created
                    else:
                        result = credits_debit(
                            product_id=product.pk, company_id=company.pk, amount=rng.randint(5, 40),
                            job_id=f"demo-render-{link.external_org_id}-{(now - timedelta(days=days_ago)).date()}",
                            source_service="image-renderer",
                            actor="system:demo_setup", recorded_at=at,
                        )
                        written += not result.replayed
                except ApplicationError:
                    continue  # e.g. a wallet frozen by staff meanwhile
            wallet = wallet_get_or_create(company_id=company.pk, product_id=product.pk)
            if wallet.low_balance_threshold is None:
                wallet_threshold_set(wallet=wallet, low_balance_threshold=200, reason="demo data", actor="system:demo_setup")
            try:
                refund = credits_refund(
                    product_id=product.pk, company_id=company.pk, source_service="image-renderer",
                    refund_for_job_id=f"demo-render-{link.external_org_id}-{(now - timedelta(days=2)).date()}",
                    reason="Render failed (demo)",
                )
                written += not refund.replayed
            except ApplicationError:
                pass
        return written

    def _print_credentials(self, product: Product, *, base_url: str) -> None:
        password = secrets.token_urlsafe(12)
        user_model = get_user_model()
        user = user_model.objects.filter(username="admin").first() or user_model(username="admin")
        user.email = user.email or "admin@example.com"
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        _, raw_key = api_key_create(product=product, name="demo")
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "=" * 72,
                    "  SaaSDesk demo is ready. These credentials are shown only once:",
                    "",
                    f"  Admin:     {base_url}/admin/",
                    "  Username:  admin",
                    f"  Password:  {password}",
                    "",
                    f"  API docs:  {base_url}/api/v1/docs/",
                    f"  API key:   {raw_key}   (product '{product.code}')",
                    "",
                    f"  export API={base_url}/api/v1",
                    f"  export KEY={raw_key}",
                    *(
                        [
                            "",
                            f"  Webhooks:  {DEMO_WEBHOOK_URL}  secret {self.webhook_secret}",
                            f"             python -m tests.notifications.receiver --port 9000 --secret {self.webhook_secret}",
                        ]
                        if getattr(self, "webhook_secret", None)
                        else []
                    ),
                    "=" * 72,
                    "",
                ]
            )
        )
