"""Which tier a Stripe subscription stands for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from entitlements.models import Tier, TierFeature
from entitlements.selectors import tier_default_for_product, tier_get

# Stripe metadata keys that name a tier explicitly (on the subscription or the
# checkout session), checked in this order.
TIER_METADATA_KEYS = ("tier_code", "tierCode", "tier")


def tier_get_by_code(*, product_id, tier_code: str) -> Tier:
    """The product's tier with this code; NotFound when there is none (another
    product's tier is as unknown as a missing one: SPEC §2, a code in a body that
    names nothing visible to the key is a 404)."""
    return tier_get(product_id=product_id, code=tier_code)


def tier_resolve(
    *,
    product_id,
    price_ids: Iterable[str],
    tier_code: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Tier | None:
    """The tier of a subscription within `product_id`: `tier_code` when given
    (400 if unknown), else a `tier_code` in Stripe metadata, else the tier whose
    base-fee price is among `price_ids`, else the tier with the most feature
    prices among them (ties: the higher display order). None if nothing matches."""
    if tier_code:
        return tier_get_by_code(product_id=product_id, tier_code=tier_code)
    for key in TIER_METADATA_KEYS:
        code = (metadata or {}).get(key)
        if code:
            tier = Tier.objects.filter(product_id=product_id, code=str(code)).first()
            if tier is not None:
                return tier
    price_ids = [price_id for price_id in price_ids if price_id]
    if not price_ids:
        return None
    by_base_fee = list(
        Tier.objects.filter(product_id=product_id, base_fee_stripe_price_id__in=price_ids).order_by(
            "-is_active", "-display_order", "code"
        )[:1]
    )
    if by_base_fee:
        return by_base_fee[0]
    matches: dict[Any, int] = {}
    for tier_id in TierFeature.objects.filter(
        tier__product_id=product_id, stripe_price_id__in=price_ids
    ).values_list("tier_id", flat=True):
        matches[tier_id] = matches.get(tier_id, 0) + 1
    if not matches:
        return None
    tiers = Tier.objects.filter(pk__in=matches).order_by("-is_active", "-display_order", "code")
    return max(tiers, key=lambda tier: matches[tier.pk])  # max keeps the first of equals


def tier_default_get(*, product_id) -> Tier | None:
    """The product's active default tier (entitlements decides what that is)."""
    return tier_default_for_product(product_id=product_id)
