"""The one home of "what usage costs": billable quantity × a price's unit
amount, in minor units. Statements use it (and the coming
`POST /billing/estimate` will)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from billing.models import Price


def unit_amount_of(price: Price | None) -> Decimal | None:
    """A mirrored price's per-unit amount in minor units (sub-cent prices
    keep their decimals); None when the price has no flat per-unit amount."""
    if price is None:
        return None
    if price.unit_amount_decimal is not None:
        return Decimal(price.unit_amount_decimal)
    if price.unit_amount is not None:
        return Decimal(price.unit_amount)
    return None


def usage_amount(*, billable_quantity: int, unit_amount: Decimal | None) -> int:
    """billable × unit amount, rounded half-up to a whole minor unit (0 without a price)."""
    if unit_amount is None or billable_quantity <= 0:
        return 0
    return int((Decimal(billable_quantity) * unit_amount).to_integral_value(rounding=ROUND_HALF_UP))


def minor_to_units(amount: int | Decimal, currency: str) -> str:
    """Minor units shown in currency units: (4900, "eur") → "49.00"."""
    return f"{Decimal(amount) / 100:.2f}"
