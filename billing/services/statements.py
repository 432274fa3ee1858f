"""Usage statements (SPEC §8): for a company, a product and any period —
base fees, billable usage × unit price, the credits columns, the invoices —
as data (the API), HTML and CSV (email, admin).

- **Base fees**: the tier base-fee lines of the company's invoices (not draft
  or void) whose line period overlaps the range, whole (not prorated).
- **Usage**: per meter period that overlaps the range (whole periods: a
  meter's value is not split by day), billable =
  max(0, value − the includedQuantity in force for that period (the one its
  latest usage event recorded)); × the unit price of the feature's Stripe
  price (mirrored `Price`) through `pricing.usage_amount`.
- **Credits** from the ledger: opening = balance before `from`, closing =
  balance at the end of `to`; grant and transfer in → granted; purchase →
  purchased; usage and fallback → used; refund → refunded; expiry → expired;
  reversal, adjustment and transfer out → adjusted (signed), so that opening
  + purchased + granted − used + refunded − expired + adjusted = closing.
- **Total** = base fees + usage amounts (minor units; HTML/CSV show currency units).
- **Header** (`billTo`): the company's name and country and its billing email,
  address and tax id with the product (`statement_bill_to`), on the JSON, the
  HTML (and so the email) and the CSV (`bill_to` rows first)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.db.models import OuterRef, Q, Subquery
from django.template.loader import render_to_string

from billing.models import Invoice, Price
from companies.models import Account, Company, Contact, Product
from companies.profile import BILLING_ADDRESS_FIELDS
from companies.selectors import company_get_visible
from config.errors import BadRequest, Conflict, NotFound
from credits.models import EntryKind, LedgerEntry, Wallet
from entitlements.models import Feature, FeatureAccess, FeatureKind, Tier, TierFeature
from metering.models import UsageEvent, UsageMeter
from metering.selectors import access_terms_bulk
from metering.rules import billable

from .pricing import minor_to_units, unit_amount_of, usage_amount

MAX_DAYS = 3 * 366
INVOICE_STATES = ("open", "paid", "uncollectible")


@dataclass
class Statement:
    company: Company
    product: Product
    start: datetime
    end: datetime  # exclusive
    currency: str
    base_fees: list[dict] = field(default_factory=list)
    usage: list[dict] = field(default_factory=list)
    credits: dict[str, int] = field(default_factory=dict)
    invoices: list[dict] = field(default_factory=list)
    total: int = 0
    # The header: who the statement is for (the company's billing profile, SPEC §3).
    bill_to: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "companyId": str(self.company.pk), "from": self.start.date().isoformat(),
            "to": (self.end - timedelta(days=1)).date().isoformat(), "billTo": self.bill_to, "currency": self.currency,
            "baseFees": self.base_fees, "usage": self.usage, "credits": self.credits, "invoices": self.invoices,
            "total": self.total,
        }


def statement_range(start: date, end: date) -> tuple[datetime, datetime]:
    """[from 00:00 UTC, the day after `to` 00:00 UTC): both days are included."""
    if end < start:
        raise BadRequest.for_field("to", "Must be on or after from.")
    if (end - start).days > MAX_DAYS:
        raise BadRequest.for_field("to", f"A statement covers at most {MAX_DAYS} days.")
    return (datetime.combine(start, time.min, tzinfo=dt_timezone.utc),
            datetime.combine(end + timedelta(days=1), time.min, tzinfo=dt_timezone.utc))


def statement_build(*, product_id, company_id, start: date, end: date) -> Statement:
    company = company_get_visible(product_id=product_id, company_id=company_id)
    product = Product.objects.get(pk=product_id)
    since, until = statement_range(start, end)
    invoices = list(
        Invoice.objects.filter(company=company, product=product, status__in=INVOICE_STATES)
        .order_by("stripe_created_at", "id")
    )
    statement = Statement(company=company, product=product, start=since, end=until, currency=_currency(
        company, product, invoices), bill_to=statement_bill_to(company=company, product=product))
    _base_fees(statement, invoices)
    _usage(statement)
    _credits(statement)
    statement.total = sum(fee["amount"] for fee in statement.base_fees) + sum(line["amount"] for line in statement.usage)
    return statement


def statement_bill_to(*, company: Company, product: Product) -> dict[str, Any]:
    """The statement header: the company's name and country and its billing
    profile with this product (billing email, address, tax id; SPEC §3), ""
    / {} where not given. The one source for the JSON, HTML, CSV and email."""
    account = (
        Account.objects.filter(company=company, product=product)
        .only("billing_email", "billing_address", "tax_id")
        .first()
    )
    address = dict(account.billing_address or {}) if account else {}
    return {
        "name": company.name,
        "email": account.billing_email if account else "",
        "address": {key: address[key] for key in BILLING_ADDRESS_FIELDS if address.get(key)},
        "taxId": account.tax_id if account else "",
        "country": company.country,
    }


def bill_to_lines(bill_to: dict[str, Any]) -> list[str]:
    """The header as printed lines: name, address lines, postal code and city,
    state, country, tax id, email (what is given, in that order)."""
    address = bill_to.get("address") or {}
    city = " ".join(part for part in (address.get("postalCode"), address.get("city")) if part)
    lines = [bill_to.get("name"), address.get("line1"), address.get("line2"), city, address.get("state"),
             address.get("country") or bill_to.get("country")]
    if bill_to.get("taxId"):
        lines.append(f"Tax ID: {bill_to['taxId']}")
    if bill_to.get("email"):
        lines.append(bill_to["email"])
    return [line for line in lines if line]


def _currency(company, product, invoices) -> str:
    if invoices:
        return invoices[-1].currency
    account = Account.objects.filter(company=company, product=product).only("currency").first()
    return account.currency if account else "usd"


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _overlaps(start: datetime | None, end: datetime | None, since: datetime, until: datetime) -> bool:
    if start is None or end is None:
        return False
    return start < until and end > since


def _base_fees(statement: Statement, invoices: list[Invoice]) -> None:
    base_prices = dict(
        Tier.objects.filter(product=statement.product).exclude(base_fee_stripe_price_id="")
        .values_list("base_fee_stripe_price_id", "code")
    )
    for invoice in invoices:
        overlapping = False
        for line in invoice.lines:
            start, end = _parse(line.get("periodStart")), _parse(line.get("periodEnd"))
            if not _overlaps(start, end, statement.start, statement.end):
                continue
            overlapping = True
            if line.get("priceId") in base_prices and not line.get("proration"):
                statement.base_fees.append({"tierCode": base_prices[line["priceId"]], "amount": line["amount"],
                                            "periodStart": line["periodStart"], "periodEnd": line["periodEnd"],
                                            "invoiceNumber": invoice.number})
        if overlapping or _overlaps(invoice.period_start, invoice.period_end, statement.start, statement.end):
            statement.invoices.append({"number": invoice.number or invoice.stripe_invoice_id,
                                       "status": invoice.status, "total": invoice.total})


def _usage(statement: Statement) -> None:
    latest_included = UsageEvent.objects.filter(meter=OuterRef("pk")).order_by("-created_at").values("included_quantity")[:1]
    meters = (
        UsageMeter.objects.filter(company=statement.company, feature__product=statement.product,
                                  period_start__lt=statement.end)
        .filter(Q(period_end__isnull=True) | Q(period_end__gt=statement.start))
        .select_related("feature").annotate(included=Subquery(latest_included)).order_by("feature__code", "period_start")
    )
    prices = unit_prices(company=statement.company, product=statement.product)
    lines: dict[str, dict] = {}
    for meter in meters:
        included = meter.included or 0
        line = lines.setdefault(meter.feature.code, {
            "featureCode": meter.feature.code, "quantity": 0, "includedQuantity": 0, "billableQuantity": 0,
            "unitAmount": prices.get(meter.feature_id), "amount": 0, "periods": 0,
        })
        line["quantity"] += meter.value
        line["includedQuantity"] += included
        line["billableQuantity"] += billable(meter.value, included)
        line["periods"] += 1
    for line in lines.values():
        unit = line["unitAmount"]
        line["amount"] = usage_amount(billable_quantity=line["billableQuantity"], unit_amount=unit)
        line["unitAmount"] = float(unit) if unit is not None else None
        statement.usage.append(line)


def unit_prices(*, company, product) -> dict:
    """feature id → unit amount of the Stripe price of the company's tier for it."""
    accesses = FeatureAccess.objects.filter(company=company, feature__product=product,
                                            tier__isnull=False).values_list("feature_id", "tier_id")
    price_ids = dict(
        (feature_id, TierFeature.objects.filter(tier_id=tier_id, feature_id=feature_id)
         .values_list("stripe_price_id", flat=True).first())
        for feature_id, tier_id in accesses
    )
    prices = {price.stripe_price_id: price for price in Price.objects.filter(stripe_price_id__in=[p for p in price_ids.values() if p])}
    return {feature_id: unit_amount_of(prices.get(price_id)) for feature_id, price_id in price_ids.items()}


def estimate_build(*, product_id, company_id, usage: dict[str, int]) -> dict[str, Any]:
    """POST /billing/estimate (SPEC §8): what `usage` (feature code →
    quantity, as one period's total) would cost on the company's tier and
    prices now — the statement's arithmetic on it: billable =
    `metering.rules.billable(quantity, includedQuantity in force)`, amount =
    `pricing.usage_amount(billable, the tier's unit price)`. Nothing is stored."""
    company = company_get_visible(product_id=product_id, company_id=company_id)
    product = Product.objects.get(pk=product_id)
    features = {f.code: f for f in Feature.objects.filter(product=product, code__in=list(usage))}
    unknown = sorted(code for code in usage if code not in features)
    if unknown:
        raise NotFound(f"Unknown feature {unknown[0]!r}.",
                       details={"fields": {f"usage.{code}": ["Unknown feature."] for code in unknown}})
    not_metered = sorted(code for code, feature in features.items() if feature.kind != FeatureKind.METERED)
    if not_metered:
        raise BadRequest(f"usage.{not_metered[0]}: Not a metered feature.",
                         details={"fields": {f"usage.{code}": ["Not a metered feature."] for code in not_metered}})
    terms = access_terms_bulk(company_ids=[company.pk], feature_ids=[f.pk for f in features.values()])
    prices = unit_prices(company=company, product=product)
    latest_invoice = list(Invoice.objects.filter(company=company, product=product, status__in=INVOICE_STATES)
                          .order_by("-stripe_created_at", "-id")[:1])
    lines = []
    for code in sorted(usage):
        feature, quantity = features[code], usage[code]
        access = terms.get((company.pk, feature.pk))
        included = access.included_quantity if access is not None and access.access_id else 0
        unit = prices.get(feature.pk)
        billable_quantity = billable(quantity, included)
        lines.append({
            "featureCode": code, "quantity": quantity, "includedQuantity": included,
            "billableQuantity": billable_quantity, "unitAmount": float(unit) if unit is not None else None,
            "amount": usage_amount(billable_quantity=billable_quantity, unit_amount=unit),
        })
    return {"companyId": str(company.pk), "currency": _currency(company, product, latest_invoice), "lines": lines,
            "total": sum(line["amount"] for line in lines)}


# The statement column of each ledger kind (transfers: granted in, adjusted
# out). Public: insights' credit figures use the same mapping.
LEDGER_COLUMNS = {EntryKind.GRANT: "granted", EntryKind.PURCHASE: "purchased", EntryKind.USAGE: "used",
                  EntryKind.FALLBACK: "used", EntryKind.REFUND: "refunded", EntryKind.EXPIRY: "expired",
                  EntryKind.REVERSAL: "adjusted", EntryKind.ADJUSTMENT: "adjusted"}
_NEGATED = {"used", "expired"}


def statement_credits(*, wallet: Wallet | None, since: datetime, until: datetime) -> dict[str, int]:
    """The credits columns of SPEC §8 for [since, until)."""
    columns = dict.fromkeys(["opening", "purchased", "granted", "used", "refunded", "expired", "adjusted", "closing"], 0)
    if wallet is None:
        return columns
    before = LedgerEntry.objects.filter(wallet=wallet, created_at__lt=since).order_by("-created_at", "-id").first()
    columns["opening"] = before.balance_after if before else 0
    for kind, amount in LedgerEntry.objects.filter(wallet=wallet, created_at__gte=since, created_at__lt=until) \
            .values_list("kind", "amount"):
        if kind == EntryKind.TRANSFER:
            column = "granted" if amount > 0 else "adjusted"
        else:
            column = LEDGER_COLUMNS[kind]
        columns[column] += -amount if column in _NEGATED else amount
    last = LedgerEntry.objects.filter(wallet=wallet, created_at__lt=until).order_by("-created_at", "-id").first()
    columns["closing"] = last.balance_after if last else 0
    return columns


def _credits(statement: Statement) -> None:
    wallet = Wallet.objects.filter(company=statement.company, product=statement.product).first()
    statement.credits = statement_credits(wallet=wallet, since=statement.start, until=statement.end)


# --- rendering and sending ---------------------------------------------------------------


def statement_csv(statement: Statement) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    money = lambda amount: minor_to_units(amount, statement.currency)  # noqa: E731
    writer.writerow(["section", "item", "period_start", "period_end", "quantity", "included", "billable",
                     "unit_price", "amount", "currency"])
    bill_to = statement.bill_to
    address = bill_to.get("address") or {}
    for item, value in (("name", bill_to.get("name")), ("email", bill_to.get("email")),
                        *((f"address.{key}", address.get(key)) for key in BILLING_ADDRESS_FIELDS),
                        ("tax_id", bill_to.get("taxId"))):
        if value:
            writer.writerow(["bill_to", item, "", "", "", "", "", "", value, ""])
    for fee in statement.base_fees:
        writer.writerow(["base_fee", fee["tierCode"], fee["periodStart"], fee["periodEnd"], "", "", "", "",
                         money(fee["amount"]), statement.currency.upper()])
    for line in statement.usage:
        unit = "" if line["unitAmount"] is None else f"{line['unitAmount'] / 100:.4f}"
        writer.writerow(["usage", line["featureCode"], "", "", line["quantity"], line["includedQuantity"],
                         line["billableQuantity"], unit, money(line["amount"]), statement.currency.upper()])
    for name, value in statement.credits.items():
        writer.writerow(["credits", name, "", "", value, "", "", "", "", "credits"])
    for invoice in statement.invoices:
        writer.writerow(["invoice", invoice["number"], "", "", "", "", "", invoice["status"], money(invoice["total"]),
                         statement.currency.upper()])
    writer.writerow(["total", "", "", "", "", "", "", "", money(statement.total), statement.currency.upper()])
    return out.getvalue()


def statement_html(statement: Statement) -> str:
    money = lambda amount: f"{minor_to_units(amount, statement.currency)} {statement.currency.upper()}"  # noqa: E731
    return render_to_string("billing/statement.html", {
        "s": statement, "data": statement.as_dict(), "bill_to": bill_to_lines(statement.bill_to),
        "base_fees": [{**fee, "money": money(fee["amount"])} for fee in statement.base_fees],
        "usage": [{**line, "money": money(line["amount"]),
                   "unit": "—" if line["unitAmount"] is None else f"{line['unitAmount'] / 100:.4f}"}
                  for line in statement.usage],
        "invoices": [{**invoice, "money": money(invoice["total"])} for invoice in statement.invoices],
        "total": money(statement.total),
    })


def statement_send(*, product_id, company_id, start: date, end: date, email: str | None = None) -> tuple[Statement, str]:
    """Email the statement (HTML body + CSV attachment) through Django's email
    backend, to `email` or the company's primary contact. Returns (statement, recipient)."""
    statement = statement_build(product_id=product_id, company_id=company_id, start=start, end=end)
    if not email:
        contact = Contact.objects.filter(company=statement.company).order_by("-is_primary", "email").first()
        if contact is None:
            # Valid input, but nobody to send it to yet: the company's state, not the call, is at fault.
            raise Conflict("The company has no contact: give an email address.", details={"field": "email"})
        email = contact.email
    period = statement.as_dict()
    subject = f"{statement.product.name} usage statement {period['from']} – {period['to']}: {statement.company.name}"
    message = EmailMultiAlternatives(subject=subject, body=statement_csv(statement), to=[email])
    message.attach_alternative(statement_html(statement), "text/html")
    message.attach(f"statement-{statement.company.short_id}-{period['from']}-{period['to']}.csv",
                   statement_csv(statement), "text/csv")
    message.send()
    return statement, email
