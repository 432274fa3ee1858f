"""MRR rules (SPEC §8), in one place: how a subscription item's price becomes
a monthly amount, and which subscriptions count. Pure functions; the service
(`services.revenue`) reads the rows.

- Counted: subscriptions that grant (`active`, `past_due` — still a customer
  while Stripe retries — and `cancel_at_period_end` ones until they end).
  `trialing` counts 0: a trial pays nothing yet.
- Each item: the mirrored price's unit amount (`unit_amount_decimal`, else
  `unit_amount`) × the item's quantity, normalised to a month: month / count,
  year / (12 × count), week × 52 / (12 × count), day × 365 / (12 × count).
- Left out: metered prices (usage is not MRR), one-time prices, prices with
  no flat unit amount (tiered), prices not mirrored, and prices in another
  currency than the product's (flagged).
- Rounded half-up to the minor unit once per account (the sum of exact
  amounts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from billing.models import Price, SubscriptionStatus

MRR_STATUSES = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE})
# interval → (numerator, denominator) of its amount per month, for one interval_count.
_PER_MONTH = {"month": (1, 1), "year": (1, 12), "week": (52, 12), "day": (365, 12)}


@dataclass
class AccountMrr:
    amount: int = 0
    # Price ids left out because their currency is not the product's.
    other_currency: list[str] = field(default_factory=list)


def monthly_amount(price: Price, quantity: int) -> Decimal | None:
    """The exact monthly amount (minor units) of `quantity` × `price`, or None
    when the price is not part of MRR (metered, one-time, no flat amount)."""
    if not price.interval or price.usage_type == "metered":
        return None
    unit = price.unit_amount_decimal if price.unit_amount_decimal is not None else price.unit_amount
    if unit is None:
        return None
    numerator, denominator = _PER_MONTH[price.interval]
    return Decimal(unit) * quantity * numerator / (denominator * (price.interval_count or 1))


def account_mrr(*, subscriptions, prices: dict[str, Price], currency: str) -> AccountMrr:
    """MRR of one account from its subscriptions (objects with `status` and
    `items` [{price, quantity}]) and the mirrored prices by Stripe id."""
    result = AccountMrr()
    total = Decimal(0)
    for subscription in subscriptions:
        if subscription.status not in MRR_STATUSES:
            continue
        for item in subscription.items or []:
            price = prices.get(item.get("price"))
            if price is None:
                continue
            amount = monthly_amount(price, int(item.get("quantity") or 1))
            if amount is None:
                continue
            if price.currency.lower() != currency.lower():
                result.other_currency.append(price.stripe_price_id)
                continue
            total += amount
    result.amount = int(total.to_integral_value(rounding=ROUND_HALF_UP))
    return result


MOVEMENTS = ("new", "expansion", "contraction", "churned", "reactivation")


def movement(*, opening: int, closing: int, had_mrr_before: bool) -> tuple[str, int] | None:
    """How one account's MRR change over a period is classified: (kind,
    amount, signed: churn and contraction negative), None for no change.
    `opening` is its MRR when the period starts (the last snapshot before
    it, 0 without one), `closing` when it ends; `had_mrr_before` whether any
    earlier snapshot had MRR (new vs reactivation)."""
    if opening == closing:
        return None
    if opening == 0:
        return ("reactivation" if had_mrr_before else "new"), closing
    if closing == 0:
        return "churned", -opening
    return ("expansion" if closing > opening else "contraction"), closing - opening
