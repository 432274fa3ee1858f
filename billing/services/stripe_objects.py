"""Reading the parts of Stripe objects SaaSDesk cares about, whether they come
from the SDK (StripeObject, a dict subclass) or from a webhook payload (dict).
Tolerates both API versions: the current period moved from the subscription
to its items in 2025-03-31."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def object_id(value: Any) -> str | None:
    """An expandable field: the id string, or the expanded object's id."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    return value.get("id")


def timestamp(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def subscription_items(subscription: Any) -> list:
    items = subscription.get("items") or {}
    return list(items.get("data") or []) if hasattr(items, "get") else []


def subscription_price_ids(subscription: Any) -> list[str]:
    price_ids = []
    for item in subscription_items(subscription):
        price_id = object_id(item.get("price")) or object_id(item.get("plan"))
        if price_id:
            price_ids.append(price_id)
    return price_ids


def subscription_items_summary(subscription: Any) -> list[dict]:
    """[{"price": id, "quantity": n}] of the items (quantity 1 when Stripe
    leaves it out): what MRR is computed from (insights)."""
    summary = []
    for item in subscription_items(subscription):
        price_id = object_id(item.get("price")) or object_id(item.get("plan"))
        if price_id:
            quantity = item.get("quantity")
            summary.append({"price": price_id, "quantity": quantity if isinstance(quantity, int) else 1})
    return summary


def subscription_period(subscription: Any) -> tuple[datetime | None, datetime | None]:
    start = subscription.get("current_period_start")
    end = subscription.get("current_period_end")
    if start is None or end is None:
        items = subscription_items(subscription)
        starts = [item.get("current_period_start") for item in items if item.get("current_period_start")]
        ends = [item.get("current_period_end") for item in items if item.get("current_period_end")]
        start = start if start is not None else (min(starts) if starts else None)
        end = end if end is not None else (max(ends) if ends else None)
    return timestamp(start), timestamp(end)


def subscription_display_name(subscription: Any) -> str:
    """The first item's product name or price nickname, when Stripe sent them."""
    for item in subscription_items(subscription):
        price = item.get("price")
        if isinstance(price, dict):
            product = price.get("product")
            if isinstance(product, dict) and product.get("name"):
                return str(product["name"])
            if price.get("nickname"):
                return str(price["nickname"])
    return ""


def invoice_subscription_id(invoice: Any) -> str | None:
    """Invoices name their subscription at the top level (older API versions)
    or under parent.subscription_details (2025-03-31 and later)."""
    subscription = object_id(invoice.get("subscription"))
    if subscription:
        return subscription
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return object_id(details.get("subscription"))
