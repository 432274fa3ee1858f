"""Stripe prices mirrored into `Price` (SPEC §6, §8): by the `price.*`
webhooks (one price, re-read from Stripe) and by `manage.py sync_prices`
(every price, paged). Statements and MRR read the mirror instead of asking
Stripe on every request."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.models import Price
from billing.stripe_client import get_stripe_client, stripe_retrieve_or_none, stripe_errors_as_unavailable

from . import stripe_objects

logger = logging.getLogger("saasdesk.billing.prices")

# Fields a sync compares to tell "updated" from "unchanged".
_MIRRORED_FIELDS = (
    "stripe_product_id", "product_name", "nickname", "lookup_key", "unit_amount", "unit_amount_decimal",
    "currency", "interval", "interval_count", "usage_type", "active", "livemode", "stripe_created_at",
)


@dataclass(frozen=True)
class PriceSyncResult:
    price: Price
    created: bool
    changed: bool


@dataclass(frozen=True)
class PricesSyncCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


def _price_values(stripe_price: Any) -> dict[str, Any]:
    product = stripe_price.get("product")
    recurring = stripe_price.get("recurring") or {}
    decimal_text = stripe_price.get("unit_amount_decimal")
    try:
        unit_amount_decimal = Decimal(str(decimal_text)) if decimal_text not in (None, "") else None
    except InvalidOperation:
        unit_amount_decimal = None
    unit_amount = stripe_price.get("unit_amount")
    if unit_amount_decimal is None and unit_amount is not None:
        unit_amount_decimal = Decimal(int(unit_amount))
    return {
        "stripe_product_id": stripe_objects.object_id(product) or "",
        # The name only when the product was expanded; else keep what we had.
        "product_name": str(product.get("name") or "") if hasattr(product, "get") else None,
        "nickname": stripe_price.get("nickname") or "",
        "lookup_key": stripe_price.get("lookup_key") or "",
        "unit_amount": int(unit_amount) if unit_amount is not None else None,
        "unit_amount_decimal": unit_amount_decimal,
        "currency": str(stripe_price.get("currency") or "").lower(),
        "interval": recurring.get("interval") or "",
        "interval_count": recurring.get("interval_count") if recurring else None,
        "usage_type": (recurring.get("usage_type") or "") if recurring else "",
        "active": bool(stripe_price.get("active", True)),
        "livemode": bool(stripe_price.get("livemode")),
        "stripe_created_at": stripe_objects.timestamp(stripe_price.get("created")),
    }


def price_sync(*, stripe_price: Any) -> PriceSyncResult:
    """Create or update the mirror of `stripe_price` (as just read from
    Stripe). The row is locked while it is compared and written, so a webhook
    and a sync reading the same price never interleave their writes."""
    values = _price_values(stripe_price)
    if values["product_name"] is None:
        values.pop("product_name")
    with transaction.atomic():
        price, created = Price.objects.select_for_update().get_or_create(
            stripe_price_id=stripe_price["id"], defaults={**values, "synced_at": timezone.now()}
        )
        if created:
            return PriceSyncResult(price=price, created=True, changed=True)
        changed = [name for name, value in values.items() if getattr(price, name) != value]
        for name in changed:
            setattr(price, name, values[name])
        price.synced_at = timezone.now()
        price.save(update_fields=[*changed, "synced_at"])
    return PriceSyncResult(price=price, created=False, changed=bool(changed))


def price_refresh(*, stripe_price_id: str) -> PriceSyncResult | None:
    """Re-read one price from Stripe (with its product) and mirror it. A
    price Stripe no longer knows is kept and marked inactive; None if it was
    never mirrored. Stripe unreachable → ServiceUnavailable (nothing changes)."""
    stripe_price = stripe_retrieve_or_none(
        get_stripe_client().v1.prices, stripe_price_id, {"expand": ["product"]}, operation="price.retrieve"
    )
    if stripe_price is None:
        price = Price.objects.filter(stripe_price_id=stripe_price_id).first()
        if price is None:
            return None
        if price.active:
            price.active = False
            price.synced_at = timezone.now()
            price.save(update_fields=["active", "synced_at"])
        return PriceSyncResult(price=price, created=False, changed=True)
    return price_sync(stripe_price=stripe_price)


def prices_sync_all(*, active_only: bool = False) -> PricesSyncCounts:
    """Mirror every price of the Stripe account (paged, 100 at a time, with
    their products). Idempotent: a second run reports them unchanged. Stripe
    failing midway → ServiceUnavailable; what was mirrored so far stays (each
    price is its own transaction) and the next run carries on."""
    client = get_stripe_client()
    params: dict[str, Any] = {"limit": 100, "expand": ["data.product"]}
    if active_only:
        params["active"] = True
    created = updated = unchanged = 0
    with stripe_errors_as_unavailable("price.list"):
        for stripe_price in client.v1.prices.list(params).auto_paging_iter():
            result = price_sync(stripe_price=stripe_price)
            if result.created:
                created += 1
            elif result.changed:
                updated += 1
            else:
                unchanged += 1
    logger.info("prices synced", extra={"created": created, "updated": updated, "unchanged": unchanged})
    return PricesSyncCounts(created=created, updated=updated, unchanged=unchanged)


def price_product_refresh(*, stripe_product_id: str) -> int:
    """Re-read a Stripe product and carry its name onto the mirrored prices
    of that product. Returns how many prices changed."""
    client = get_stripe_client()
    product = stripe_retrieve_or_none(client.v1.products, stripe_product_id, operation="product.retrieve")
    if product is None:
        return 0
    name = str(product.get("name") or "")
    return (
        Price.objects.filter(stripe_product_id=stripe_product_id)
        .exclude(product_name=name)
        .update(product_name=name, synced_at=timezone.now())
    )
