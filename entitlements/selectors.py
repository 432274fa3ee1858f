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
from .models import AccessSource, Feature, FeatureAccess, FeatureKind, Tier, TierFeature
from .usage import current_usage

_FEATURE_FIELDS = ("id", "code", "name", "kind", "unit", "reset_period", "default_config", "stripe_meter_event_name")
_ACCESS_FIELDS = (
    "feature_id",
    "is_enabled",
    "quantity_limit",
    "included_quantity",
    "config",
    "source",
    "valid_from",
    "valid_until",
    "tier_id",
)


@dataclass(frozen=True)
class FeatureCheck:
    """The check result of SPEC §4 (the serializer renders it in camelCase)."""

    feature_code: str
    feature_name: str
    kind: str
    is_enabled: bool
    can_use: bool
    has_quantity: bool
    current_usage: int
    quantity_limit: int | None
    included_quantity: int
    remaining: int | None
    config_values: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    valid_until: datetime | None = None
    tier_code: str | None = None


# --- building a check from plain data ---------------------------------------------


def _merged_config(default_config: dict, config: dict) -> dict:
    merged = dict(default_config or {})
    merged.update(config or {})
    return merged


def feature_check_build(
    *, feature: dict[str, Any], access: dict[str, Any] | None, usage: int, tier_code: str | None, at: datetime
) -> FeatureCheck:
    """Pure rules of the check: a missing row reads as disabled; access
    outside [validFrom, validUntil) reads as disabled; a metered feature can
    be used while its usage is under the limit (no limit = unlimited)."""
    has_quantity = feature["kind"] == FeatureKind.METERED
    if not access:
        return FeatureCheck(
            feature_code=feature["code"],
            feature_name=feature["name"],
            kind=feature["kind"],
            is_enabled=False,
            can_use=False,
            has_quantity=has_quantity,
            current_usage=usage if has_quantity else 0,
            quantity_limit=None,
            included_quantity=0,
            remaining=0 if has_quantity else None,
            config_values=_merged_config(feature["default_config"], {}),
        )
    valid_from, valid_until = access["valid_from"], access["valid_until"]
    in_window = (valid_from is None or valid_from <= at) and (valid_until is None or at < valid_until)
    is_enabled = bool(access["is_enabled"]) and in_window
    limit = access["quantity_limit"]
    if has_quantity:
        under_limit = limit is None or usage < limit
        if not is_enabled:
            remaining = 0
        else:
            remaining = None if limit is None else max(0, limit - usage)
    else:
        under_limit, remaining = True, None
    return FeatureCheck(
        feature_code=feature["code"],
        feature_name=feature["name"],
        kind=feature["kind"],
        is_enabled=is_enabled,
        can_use=is_enabled and under_limit,
        has_quantity=has_quantity,
        current_usage=usage if has_quantity else 0,
        quantity_limit=limit,
        included_quantity=access["included_quantity"],
        remaining=remaining,
        config_values=_merged_config(feature["default_config"], access["config"]),
        source=access["source"],
        valid_until=valid_until,
        tier_code=tier_code,
    )


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


def _load_access(product_id, company_id, feature_code: str) -> dict[str, Any]:
    row = (
        FeatureAccess.objects.filter(company_id=company_id, feature__product_id=product_id, feature__code=feature_code)
        .values(*_ACCESS_FIELDS)
        .first()
    )
    return row or {}


def _feature_instance(product_id, data: dict[str, Any]) -> Feature:
    """An unsaved Feature carrying the cached fields, for the usage reader."""
    return Feature(product_id=product_id, **data)


def _usage_for(product_id, company_id, feature: dict[str, Any], at: datetime) -> int:
    if feature["kind"] != FeatureKind.METERED:
        return 0
    usage = current_usage(company_id=company_id, features=[_feature_instance(product_id, feature)], at=at)
    return usage.get(feature["id"], 0)


def _check_from_cache(
    *, product_id, company_id, feature_code: str, at: datetime | None, require_visible: bool
) -> FeatureCheck:
    at = at or timezone.now()
    loaders = {
        check_cache.catalog_key(product_id): lambda: _load_catalog(product_id),
        check_cache.access_key(product_id, company_id, feature_code): lambda: _load_access(
            product_id, company_id, feature_code
        ),
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
    usage = _usage_for(product_id, company_id, feature, at)
    return feature_check_build(feature=feature, access=access, usage=usage, tier_code=tier_code, at=at)


# --- public selectors ------------------------------------------------------------


def _company_id(company: Company | uuid.UUID | str) -> Any:
    return company.pk if isinstance(company, Company) else company


def feature_access_check(
    *,
    company: Company | uuid.UUID,
    product_id,
    feature_code: str | None = None,
    feature: Feature | None = None,
    at: datetime | None = None,
) -> FeatureCheck:
    """The check result of one company × feature (by code or instance) of
    `product_id`. Unknown feature → NotFound. Does not check that the company
    is linked to the product (the API uses `feature_access_check_visible`)."""
    code = feature.code if feature is not None else feature_code
    if not code:
        raise NotFound("Unknown feature.")
    return _check_from_cache(
        product_id=product_id, company_id=_company_id(company), feature_code=code, at=at, require_visible=False
    )


def feature_access_check_visible(
    *, product_id, company_id, feature_code: str, at: datetime | None = None
) -> FeatureCheck:
    """Like `feature_access_check`, but a company not linked to the product
    is NotFound. One cache round trip when everything is cached."""
    return _check_from_cache(
        product_id=product_id, company_id=company_id, feature_code=feature_code, at=at, require_visible=True
    )


def feature_checks_for_company(
    *, company: Company | uuid.UUID, product_id, at: datetime | None = None
) -> list[FeatureCheck]:
    """Check results of every feature of the product, ordered by code: the
    catalog from the cache, one query for the access rows, one usage read."""
    at = at or timezone.now()
    company_id = _company_id(company)
    catalog = check_cache.get_or_load({check_cache.catalog_key(product_id): lambda: _load_catalog(product_id)})[
        check_cache.catalog_key(product_id)
    ]
    features = sorted(catalog["features"].values(), key=lambda f: f["code"])
    rows = {
        row["feature_id"]: row
        for row in FeatureAccess.objects.filter(company_id=company_id, feature__product_id=product_id).values(
            *_ACCESS_FIELDS
        )
    }
    usage = current_usage(
        company_id=company_id, features=[_feature_instance(product_id, f) for f in features], at=at
    )
    checks = []
    for feature in features:
        access = rows.get(feature["id"])
        tier_code = catalog["tiers"].get(str(access["tier_id"])) if access and access["tier_id"] else None
        checks.append(
            feature_check_build(
                feature=feature, access=access, usage=usage.get(feature["id"], 0), tier_code=tier_code, at=at
            )
        )
    return checks


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


def feature_access_list(*, company: Company | uuid.UUID, product_id=None) -> QuerySet[FeatureAccess]:
    """A company's access rows (optionally of one product), with feature and tier."""
    rows = FeatureAccess.objects.filter(company_id=_company_id(company)).select_related("feature", "tier")
    if product_id is not None:
        rows = rows.filter(feature__product_id=product_id)
    return rows.order_by("feature__code")


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


def access_source_values() -> list[str]:
    return list(AccessSource.values)
