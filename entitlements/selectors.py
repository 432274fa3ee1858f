"""Reads of the entitlements app: the feature check (the hottest read of the
system, served from `entitlements.cache`), listings, tiers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from companies.models import Company
from companies.selectors import company_is_visible, company_not_found, product_links
from config.errors import NotFound

from . import cache as check_cache
from .decision import Decision, FeatureCheck, feature_decide
from .models import ACCESS_ROW_FIELDS, AccessSource, Feature, FeatureAccess, FeatureKind, Tier, TierFeature

__all__ = ["Decision", "FeatureCheck", "feature_check_build", "feature_decide"]

_FEATURE_FIELDS = (
    "id", "code", "name", "kind", "unit", "reset_period", "default_config", "stripe_meter_event_name", "credit_cost",
)
_ACCESS_FIELDS = ACCESS_ROW_FIELDS


def feature_credits_available(*, features: list[dict[str, Any]], company_id, product_id) -> int | None:
    """Credits the company could spend now, if any of `features` is
    credit-priced (one query), else None: the input checks need from the wallet."""
    if all(feature.get("credit_cost") is None for feature in features):
        return None
    from credits.selectors import credits_available

    return credits_available(company_id=company_id, product_id=product_id)


def feature_check_build(**kwargs) -> FeatureCheck:
    """The check result alone of `entitlements.decision.feature_decide`."""
    return feature_decide(**kwargs).check


# --- cached data -------------------------------------------------------------------


def _load_catalog(product_id) -> dict[str, Any]:
    features = {row["code"]: row for row in Feature.objects.filter(product_id=product_id).values(*_FEATURE_FIELDS)}
    tiers = {str(tier_id): code for tier_id, code in Tier.objects.filter(product_id=product_id).values_list("id", "code")}
    return {"features": features, "tiers": tiers}


def _load_visibility(product_id, company_id) -> bool:
    return company_is_visible(product_id=product_id, company_id=company_id)


def _load_org(product_id, external_org_id: str) -> str:
    company_id = (
        product_links(product_id=product_id)
        .filter(external_org_id=external_org_id)
        .values_list("company_id", flat=True)
        .first()
    )
    return str(company_id) if company_id else ""


def _load_suspended(product_id, company_id) -> bool:
    from companies.selectors import account_is_suspended

    return account_is_suspended(product_id=product_id, company_id=company_id)


def _load_access(product_id, company_id, feature_code: str) -> dict[str, Any]:
    row = (
        FeatureAccess.objects.filter(company_id=company_id, feature__product_id=product_id, feature__code=feature_code)
        .values(*_ACCESS_FIELDS)
        .first()
    )
    return row or {}


@dataclass(frozen=True)
class FeatureCheckInput:
    """What a check needs besides usage: the feature and the company's access
    row as plain (cached) data, and the code of the tier that granted it."""

    feature: dict[str, Any]
    access: dict[str, Any] | None
    tier_code: str | None
    suspended: bool = False

    @property
    def is_metered(self) -> bool:
        return self.feature["kind"] == FeatureKind.METERED


def feature_check_input(*, product_id, company_id, feature_code: str, require_visible: bool = False) -> FeatureCheckInput:
    """The cached inputs of one check (one cache round trip when warm).
    Unknown feature → NotFound; with `require_visible`, a company not linked
    to the product → NotFound."""
    loaders = {
        check_cache.catalog_key(product_id): lambda: _load_catalog(product_id),
        check_cache.access_key(product_id, company_id, feature_code): lambda: _load_access(
            product_id, company_id, feature_code
        ),
        check_cache.account_key(product_id, company_id): lambda: _load_suspended(product_id, company_id),
    }
    if require_visible:
        loaders[check_cache.visibility_key(product_id, company_id)] = lambda: _load_visibility(product_id, company_id)
    values = check_cache.get_or_load(loaders)
    if require_visible and not values[check_cache.visibility_key(product_id, company_id)]:
        raise company_not_found()
    catalog = values[check_cache.catalog_key(product_id)]
    feature = catalog["features"].get(feature_code)
    if feature is None:
        raise NotFound(f"Unknown feature {feature_code!r}.")
    access = values[check_cache.access_key(product_id, company_id, feature_code)]
    if access and access["feature_id"] != feature["id"]:
        # A feature was re-created under the same code since this was cached.
        access = _load_access(product_id, company_id, feature_code)
    tier_code = catalog["tiers"].get(str(access["tier_id"])) if access and access["tier_id"] else None
    suspended = bool(values[check_cache.account_key(product_id, company_id)])
    return FeatureCheckInput(feature=feature, access=access or None, tier_code=tier_code, suspended=suspended)


def feature_check_inputs_for_company(*, product_id, company_id) -> list[FeatureCheckInput]:
    """The inputs of every feature's check, ordered by code: the catalog from
    the cache and one query for the company's access rows."""
    values = check_cache.get_or_load(
        {
            check_cache.catalog_key(product_id): lambda: _load_catalog(product_id),
            check_cache.account_key(product_id, company_id): lambda: _load_suspended(product_id, company_id),
        }
    )
    catalog = values[check_cache.catalog_key(product_id)]
    suspended = bool(values[check_cache.account_key(product_id, company_id)])
    rows = {
        row["feature_id"]: row
        for row in FeatureAccess.objects.filter(company_id=company_id, feature__product_id=product_id).values(
            *_ACCESS_FIELDS
        )
    }
    inputs = []
    for feature in sorted(catalog["features"].values(), key=lambda f: f["code"]):
        access = rows.get(feature["id"])
        tier_code = catalog["tiers"].get(str(access["tier_id"])) if access and access["tier_id"] else None
        inputs.append(FeatureCheckInput(feature=feature, access=access, tier_code=tier_code, suspended=suspended))
    return inputs


# --- public selectors ------------------------------------------------------------


def _company_id(company: Company | uuid.UUID | str) -> Any:
    return company.pk if isinstance(company, Company) else company


def feature_access_check(
    *,
    company: Company | uuid.UUID,
    product_id,
    feature_code: str | None = None,
    feature: Feature | None = None,
    usage: int = 0,
    at: datetime | None = None,
) -> FeatureCheck:
    """The check result of one company × feature (by code or instance) of
    `product_id`, with the current-period `usage` the caller passes (SPEC §1:
    entitlements does not know usage; the product API's check is served by
    `metering.selectors.feature_check`, which reads it). Unknown feature →
    NotFound. Does not check that the company is linked to the product."""
    code = feature.code if feature is not None else feature_code
    if not code:
        raise NotFound("Unknown feature.")
    check_input = feature_check_input(product_id=product_id, company_id=_company_id(company), feature_code=code)
    return feature_check_build(
        feature=check_input.feature,
        access=check_input.access,
        usage=usage,
        tier_code=check_input.tier_code,
        suspended=check_input.suspended,
        at=at or timezone.now(),
        credits_available=feature_credits_available(
            features=[check_input.feature], company_id=_company_id(company), product_id=product_id
        ),
    )


def feature_checks_for_company(
    *, company: Company | uuid.UUID, product_id, usage: dict[Any, int] | None = None, at: datetime | None = None
) -> list[FeatureCheck]:
    """Check results of every feature of the product, ordered by code, with
    current-period `usage` per feature id as the caller passes it (missing = 0)."""
    inputs = feature_check_inputs_for_company(product_id=product_id, company_id=_company_id(company))
    return feature_checks_build(
        inputs=inputs, company_id=_company_id(company), product_id=product_id, usage=usage or {}, at=at or timezone.now()
    )


def feature_checks_build(
    *, inputs: list[FeatureCheckInput], company_id, product_id, usage: dict[Any, int], at: datetime
) -> list[FeatureCheck]:
    """The check results of `inputs` (from `feature_check_inputs_for_company`)
    with the caller's usage per feature id (missing = 0) and one credits read."""
    credits = feature_credits_available(features=[item.feature for item in inputs], company_id=company_id, product_id=product_id)
    return [
        feature_check_build(
            feature=item.feature,
            access=item.access,
            usage=usage.get(item.feature["id"], 0),
            tier_code=item.tier_code,
            suspended=item.suspended,
            at=at,
            credits_available=credits,
        )
        for item in inputs
    ]


def company_id_visible(*, product_id, company_id) -> Any:
    """`company_id` if the company is visible to the product (companies'
    rule), else NotFound; cached, as the feature check needs it every time."""
    key = check_cache.visibility_key(product_id, company_id)
    if not check_cache.get_or_load({key: lambda: _load_visibility(product_id, company_id)})[key]:
        raise company_not_found()
    return company_id


def company_id_for_external_org(*, product_id, external_org_id: str) -> uuid.UUID:
    """The company linked to `external_org_id` in the product, else NotFound (cached)."""
    key = check_cache.org_key(product_id, external_org_id)
    company_id = check_cache.get_or_load({key: lambda: _load_org(product_id, external_org_id)})[key]
    if not company_id:
        raise company_not_found()
    return uuid.UUID(company_id)


def feature_get(*, product_id, code: str) -> Feature:
    feature = Feature.objects.filter(product_id=product_id, code=code).first()
    if feature is None:
        raise NotFound(f"Unknown feature {code!r}.", details={"featureCode": code})
    return feature


# --- tiers -------------------------------------------------------------------------


def tier_list(*, product_id) -> QuerySet[Tier]:
    """Active tiers of the product in display order."""
    return Tier.objects.filter(product_id=product_id, is_active=True).order_by("display_order", "code")


def tier_get(*, product_id, code: str) -> Tier:
    """A tier of the product (active or not) with its features; NotFound otherwise."""
    tier = (
        Tier.objects.filter(product_id=product_id, code=code)
        .prefetch_related(
            Prefetch("tier_features", queryset=TierFeature.objects.select_related("feature").order_by("feature__code"))
        )
        .first()
    )
    if tier is None:
        raise NotFound(f"Unknown tier {code!r}.", details={"tierCode": code})
    return tier


def tier_default_for_product(*, product_id) -> Tier | None:
    """The product's default tier, if it has one and it is active."""
    return Tier.objects.filter(product_id=product_id, is_default=True, is_active=True).first()


def tier_stripe_price_ids(*, tier: Tier) -> list[str]:
    """The tier's Stripe prices: base fee first, then feature prices (by
    feature code), without blanks or repeats."""
    prices: list[str] = []
    if tier.base_fee_stripe_price_id:
        prices.append(tier.base_fee_stripe_price_id)
    for tier_feature in sorted(tier.tier_features.all(), key=lambda tf: tf.feature.code):
        if tier_feature.stripe_price_id and tier_feature.stripe_price_id not in prices:
            prices.append(tier_feature.stripe_price_id)
    return prices


# --- explanation (SPEC §4 Explain) ------------------------------------------------

_LAYER_API_NAMES = {
    "is_enabled": "isEnabled",
    "quantity_limit": "quantityLimit",
    "included_quantity": "includedQuantity",
    "config": "config",
}


def tier_layer_via(access: FeatureAccess) -> str | None:
    """Which apply call (or subscription) put the current tier layer there:
    the reason and actor of the first history row with the current tier."""
    if access.tier_id is None:
        return None
    history = FeatureAccess.history.model.objects.filter(id=access.pk)
    last_other = (
        history.exclude(tier_id=access.tier_id).order_by("-history_date").values_list("history_date", flat=True).first()
    )
    rows = history.filter(tier_id=access.tier_id)
    if last_other is not None:
        rows = rows.filter(history_date__gt=last_other)
    record = rows.order_by("history_date").first()
    if record is None:
        return None
    who = record.actor or (str(record.history_user) if record.history_user_id else "")
    return f"{record.history_change_reason or 'Tier applied'}" + (f" by {who}" if who else "") + f" on {record.history_date:%Y-%m-%d}"


def access_layers(access: FeatureAccess | None, *, at: datetime) -> list[dict[str, Any]]:
    """The layers of an access row, tier first (camelCase, for Explain and
    the admin): which fields each sets and whether it is in force."""
    if access is None:
        return []
    effective = access.effective_at(at)
    layers = []
    if access.tier_granted:
        layers.append(
            {
                "source": AccessSource.SUBSCRIPTION,
                "fields": {
                    _LAYER_API_NAMES[name]: getattr(access, name) for name in ("is_enabled", "quantity_limit", "included_quantity", "config")
                },
                "inForce": True,
                "validFrom": None,
                "validUntil": None,
                "setBy": None,
                "setAt": None,
                "reason": None,
            }
        )
    if access.has_override:
        layers.append(
            {
                "source": access.source,
                "fields": {_LAYER_API_NAMES[name]: value for name, value in (access.overrides or {}).items()},
                "inForce": effective.override_in_force,
                "validFrom": access.valid_from,
                "validUntil": access.valid_until,
                "setBy": access.set_by or None,
                "setAt": access.set_at,
                "reason": access.reason or None,
            }
        )
    return layers
