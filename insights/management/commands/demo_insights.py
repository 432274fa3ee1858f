"""Demo data of the insights app (called by `manage.py demo_setup`, which
cannot import insights): 12 months of revenue snapshots for the demo
product's accounts (when there are none yet), a payment problem for the
demo's at-risk companies, and every account's health score. Idempotent."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.models import Invoice
from companies.models import Account, CompanyStatus, Product

from ...models import AccountHealth, RevenueSnapshot
from ...services import health_compute

MONTHS = 12
# (external org id, invoice status): the demo's at-risk customers owe money.
PAYMENT_TROUBLE = [("org_initech", "uncollectible"), ("org_vandelay", "open")]


def _month_starts(today: date, months: int) -> list[date]:
    starts = []
    year, month = today.year, today.month
    for _ in range(months):
        starts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return list(reversed(starts))


def _seed(account_id) -> int:
    return int(hashlib.sha256(str(account_id).encode()).hexdigest()[:8], 16)


def _history(account: Account, months: list[date], today: date) -> list[tuple[date, int]]:
    """A plausible year for the account ending at its MRR today: customers
    start in different months, some grow into their plan; churned ones paid
    for a while and left; one in five paused and came back (reactivation)."""
    seed = _seed(account.pk)
    points = []
    if account.status == CompanyStatus.CHURNED:
        start, end, mrr = seed % 4, 5 + seed % 5, 4_900 * (1 + seed % 3)
        for index, first in enumerate(months):
            points.append((first, mrr if start <= index < end else 0))
        return points
    if not account.mrr:
        return []
    start = seed % 8  # the month it became a customer
    paused = seed % 5 == 0 and start < 6
    for index, first in enumerate(months):
        if index < start:
            continue
        if paused and index in (start + 2, start + 3):
            points.append((first, 0))
            continue
        # 70% of today's MRR at the start, growing into it in steps.
        share = min(100, 70 + 10 * (index - start))
        points.append((first, account.mrr * share // 100))
    points.append((today, account.mrr))
    return points


class Command(BaseCommand):
    help = "Demo insights: 12 months of revenue snapshots, payment trouble for at-risk companies, health scores."

    def add_arguments(self, parser):
        parser.add_argument("product", nargs="?", default="chat", help="The demo product's code (default chat).")

    def handle(self, *args, product: str, **options):
        product_row = Product.objects.filter(code=product).first()
        if product_row is None:
            raise CommandError(f"No product {product!r}.")
        now = timezone.now()
        today = now.astimezone(UTC).date()
        snapshots = self._revenue_history(product_row, today)
        invoices = self._payment_trouble(product_row, now)
        scored = health_compute(product_id=product_row.pk, now=now, lifecycle=False)
        at_risk = AccountHealth.objects.filter(account__product=product_row, risk_level__in=["high", "critical"]).count()
        self.stdout.write(
            f"Insights demo: {snapshots} revenue snapshots, {invoices} unpaid invoices, "
            f"{scored} health scores ({at_risk} at high or critical risk)."
        )

    def _revenue_history(self, product: Product, today: date) -> int:
        if RevenueSnapshot.objects.filter(product=product, day__lt=today - timedelta(days=40)).exists():
            return 0  # a history is there already
        months = _month_starts(today, MONTHS)
        rows = []
        for account in Account.objects.filter(product=product).order_by("company__name"):
            for day, mrr in _history(account, months, today):
                rows.append(
                    RevenueSnapshot(
                        account=account, company_id=account.company_id, product=product, day=day, mrr=mrr,
                        currency=account.currency or product.currency,
                    )
                )
        RevenueSnapshot.objects.bulk_create(rows, ignore_conflicts=True)
        return len(rows)

    def _payment_trouble(self, product: Product, now) -> int:
        from companies.models import ProductLink

        made = 0
        for org_id, status in PAYMENT_TROUBLE:
            link = ProductLink.objects.filter(product=product, external_org_id=org_id).select_related("company").first()
            if link is None:
                continue
            account = Account.objects.get(company=link.company, product=product)
            _, created = Invoice.objects.get_or_create(
                stripe_invoice_id=f"in_demo_{org_id}_unpaid",
                defaults={
                    "company": link.company, "product": product, "stripe_customer_id": f"cus_demo_{org_id}",
                    "number": f"DEMO-{org_id[4:].upper()}", "status": status, "billing_reason": "subscription_cycle",
                    "currency": account.currency or product.currency, "subtotal": account.mrr, "total": account.mrr,
                    "amount_due": account.mrr, "stripe_created_at": now - timedelta(days=12),
                },
            )
            made += created
        return made
