"""Catalog as code (SPEC §4): a product with its features and tiers as one
JSON document, loaded idempotently and dumped back in the same format.

Loading is declarative for what the file names: features and tiers are
upserted by code, a tier's feature list is exactly the file's (tier features
not listed are removed), and the file's default tier becomes the only
default. Features and tiers that exist but are missing from the file are
left alone (deleting a feature would delete every company's access to it)
and reported, so a partial file never destroys data. Nothing is written
unless the whole file is valid, and everything is written in one
transaction.

`product.customerPool` (optional) puts the product in a customer pool (SPEC
section 2): products of one pool share their customers. Absent, a new product
is a pool of its own (its code) and an existing one keeps its pool. A product's
linked companies move with it (refused if other products share them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from companies.models import Product
from companies.services import product_customer_pool_set
from config.errors import ApplicationError, BadRequest

from .error_codes import EntitlementsErrorCode

from .models import (
    DEFAULT_ALERT_THRESHOLDS,
    Feature,
    FeatureKind,
    ResetPeriod,
    Tier,
    TierFeature,
    alert_thresholds_problem,
    dimensions_problem,
)

CODE_PATTERN = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")
CURRENCY_PATTERN = re.compile(r"^[a-z]{3}$")
INTERVALS = ("day", "week", "month", "year")
MAX_INT = 2**63 - 1

PRODUCT_KEYS = {"code", "name", "customerPool"}
POOL_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
FEATURE_KEYS = {
    "code", "name", "description", "kind", "unit", "resetPeriod", "stripeMeterEventName", "creditCost",
    "defaultConfig", "alertThresholds", "dimensions",
}
TIER_KEYS = {"code", "name", "description", "displayOrder", "default", "isActive", "baseFee", "creditsPerCycle", "features"}
BASE_FEE_KEYS = {"stripePriceId", "unitAmount", "currency", "interval"}
TIER_FEATURE_KEYS = {"isEnabled", "includedQuantity", "quantityLimit", "config", "stripePriceId"}


class CatalogError(BadRequest):
    """An invalid catalog file; `errors` are `path: message` lines, also given
    as `details.fields` (path → messages) like any other 400."""

    reason = EntitlementsErrorCode.CATALOG_INVALID

    def __init__(self, errors: list[str]):
        self.errors = errors
        fields: dict[str, list[str]] = {}
        for line in errors:
            path, _, message = line.partition(": ")
            fields.setdefault(path if message else "catalog", []).append(message or line)
        super().__init__("\n".join(errors), details={"fields": fields})


@dataclass
class CatalogLoadResult:
    product_code: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    not_in_file: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def summary(self) -> str:
        parts = [f"catalog {self.product_code}: {len(self.created)} created, {len(self.updated)} updated, {self.unchanged} unchanged"]
        if self.created:
            parts.append("created: " + ", ".join(self.created))
        if self.updated:
            parts.append("updated: " + ", ".join(self.updated))
        if self.not_in_file:
            parts.append("left alone (not in the file): " + ", ".join(self.not_in_file))
        return "\n".join(parts)


# --- validation ---------------------------------------------------------------------


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def object(self, value, path: str, allowed: set[str], required: tuple[str, ...] = ()) -> bool:
        if not isinstance(value, dict):
            self.error(path, "must be an object")
            return False
        for key in sorted(set(value) - allowed):
            self.error(f"{path}.{key}", "unknown field")
        for key in required:
            if key not in value:
                self.error(f"{path}.{key}", "is required")
        return True

    def string(self, value, path: str, *, max_length: int, required: bool = False, pattern=None) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            self.error(path, "must be a non-empty string" if required else "must be a string")
            return ""
        if len(value) > max_length:
            self.error(path, f"must be at most {max_length} characters")
        elif pattern is not None and not pattern.match(value):
            self.error(path, "must contain only letters, digits, '-' and '_'" if pattern is CODE_PATTERN else "has an invalid format")
        return value

    def integer(self, value, path: str, *, nullable: bool = False, minimum: int = 0):
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT:
            self.error(path, f"must be a whole number ≥ {minimum}" + (" or null" if nullable else ""))
            return None
        return value

    def boolean(self, value, path: str) -> bool:
        if not isinstance(value, bool):
            self.error(path, "must be true or false")
            return False
        return value

    def json_object(self, value, path: str) -> dict:
        if not isinstance(value, dict):
            self.error(path, "must be an object")
            return {}
        return value


def catalog_validate(data: Any) -> dict[str, Any]:
    """The file as plain snake_case data, or CatalogError listing every
    problem with its path (`tiers[1].features.sso: unknown feature`)."""
    check = _Checker()
    if not check.object(data, "$", {"product", "features", "tiers"}, ("product",)):
        raise CatalogError(check.errors)
    product: dict[str, Any] = {}
    raw_product = data.get("product")
    if "product" in data and check.object(raw_product, "product", PRODUCT_KEYS, ("code", "name")):
        product = {
            "code": check.string(raw_product.get("code"), "product.code", max_length=64, required=True, pattern=CODE_PATTERN),
            "name": check.string(raw_product.get("name"), "product.name", max_length=200, required=True),
        }
        if "customerPool" in raw_product:
            product["customer_pool"] = check.string(
                raw_product.get("customerPool"), "product.customerPool", max_length=64, required=True, pattern=POOL_PATTERN
            )

    features: list[dict[str, Any]] = []
    raw_features = data.get("features", [])
    if not isinstance(raw_features, list):
        check.error("features", "must be a list")
        raw_features = []
    seen_features: dict[str, str] = {}
    for index, raw in enumerate(raw_features):
        path = f"features[{index}]"
        if not check.object(raw, path, FEATURE_KEYS, ("code", "name", "kind")):
            continue
        code = check.string(raw.get("code"), f"{path}.code", max_length=64, required=True, pattern=CODE_PATTERN)
        if code in seen_features:
            check.error(f"{path}.code", f"duplicate feature code {code!r} (also {seen_features[code]})")
        seen_features.setdefault(code, path)
        kind = raw.get("kind")
        if kind not in FeatureKind.values:
            check.error(f"{path}.kind", f"must be one of: {', '.join(FeatureKind.values)}")
        metered = kind == FeatureKind.METERED
        feature = {
            "code": code,
            "name": check.string(raw.get("name"), f"{path}.name", max_length=200, required=True),
            "description": check.string(raw.get("description"), f"{path}.description", max_length=5000),
            "kind": kind,
            "unit": check.string(raw.get("unit"), f"{path}.unit", max_length=64),
            "reset_period": raw.get("resetPeriod") or (ResetPeriod.MONTHLY if metered else ""),
            "stripe_meter_event_name": check.string(
                raw.get("stripeMeterEventName"), f"{path}.stripeMeterEventName", max_length=100
            ),
            "credit_cost": check.integer(raw.get("creditCost"), f"{path}.creditCost", nullable=True, minimum=1),
            "default_config": check.json_object(raw.get("defaultConfig", {}), f"{path}.defaultConfig"),
            "alert_thresholds": list(DEFAULT_ALERT_THRESHOLDS),
        }
        if feature["credit_cost"] is not None and feature["stripe_meter_event_name"]:
            check.error(f"{path}.creditCost", "a feature cannot have both creditCost and stripeMeterEventName")
        if "alertThresholds" in raw:
            problem = alert_thresholds_problem(raw["alertThresholds"])
            if problem:
                check.error(f"{path}.alertThresholds", problem)
            elif not metered:
                check.error(f"{path}.alertThresholds", "only metered features have this")
            else:
                feature["alert_thresholds"] = sorted(raw["alertThresholds"])
        feature["dimensions"] = []
        if "dimensions" in raw:
            problem = dimensions_problem(raw["dimensions"])
            if problem:
                check.error(f"{path}.dimensions", problem)
            elif raw["dimensions"] and not metered:
                check.error(f"{path}.dimensions", "only metered features have this")
            else:
                feature["dimensions"] = list(raw["dimensions"])
        if "resetPeriod" in raw and raw["resetPeriod"] not in ResetPeriod.values:
            check.error(f"{path}.resetPeriod", f"must be one of: {', '.join(ResetPeriod.values)}")
        if not metered:
            for key, api_key in (
                ("unit", "unit"), ("stripe_meter_event_name", "stripeMeterEventName"), ("credit_cost", "creditCost")
            ):
                if feature[key]:
                    check.error(f"{path}.{api_key}", "only metered features have this")
            if "resetPeriod" in raw and raw["resetPeriod"]:
                check.error(f"{path}.resetPeriod", "only metered features have this")
        features.append(feature)

    tiers: list[dict[str, Any]] = []
    raw_tiers = data.get("tiers", [])
    if not isinstance(raw_tiers, list):
        check.error("tiers", "must be a list")
        raw_tiers = []
    seen_tiers: dict[str, str] = {}
    default_path = None
    for index, raw in enumerate(raw_tiers):
        path = f"tiers[{index}]"
        if not check.object(raw, path, TIER_KEYS, ("code", "name")):
            continue
        code = check.string(raw.get("code"), f"{path}.code", max_length=64, required=True, pattern=CODE_PATTERN)
        if code in seen_tiers:
            check.error(f"{path}.code", f"duplicate tier code {code!r} (also {seen_tiers[code]})")
        seen_tiers.setdefault(code, path)
        tier = {
            "code": code,
            "name": check.string(raw.get("name"), f"{path}.name", max_length=200, required=True),
            "description": check.string(raw.get("description"), f"{path}.description", max_length=5000),
            "display_order": check.integer(raw.get("displayOrder", 0), f"{path}.displayOrder", minimum=-(2**31)) or 0,
            "is_default": check.boolean(raw.get("default", False), f"{path}.default"),
            "is_active": check.boolean(raw.get("isActive", True), f"{path}.isActive"),
            "base_fee_stripe_price_id": "",
            "base_fee_unit_amount": None,
            "base_fee_currency": "",
            "base_fee_interval": "",
            "credits_per_cycle": check.integer(raw.get("creditsPerCycle", 0), f"{path}.creditsPerCycle") or 0,
            "features": {},
        }
        if tier["credits_per_cycle"] > 1_000_000_000:
            check.error(f"{path}.creditsPerCycle", "must be at most 1000000000")
        if tier["is_default"]:
            if default_path is not None:
                check.error(f"{path}.default", f"only one tier may be the default ({default_path} already is)")
            default_path = default_path or path
            if not tier["is_active"]:
                check.error(f"{path}.default", "the default tier must be active")
        base_fee = raw.get("baseFee")
        if base_fee is not None and check.object(base_fee, f"{path}.baseFee", BASE_FEE_KEYS, ("unitAmount", "currency", "interval")):
            tier["base_fee_stripe_price_id"] = check.string(
                base_fee.get("stripePriceId"), f"{path}.baseFee.stripePriceId", max_length=100
            )
            tier["base_fee_unit_amount"] = check.integer(base_fee.get("unitAmount"), f"{path}.baseFee.unitAmount")
            tier["base_fee_currency"] = check.string(
                base_fee.get("currency"), f"{path}.baseFee.currency", max_length=3, required=True, pattern=CURRENCY_PATTERN
            )
            if base_fee.get("interval") not in INTERVALS:
                check.error(f"{path}.baseFee.interval", f"must be one of: {', '.join(INTERVALS)}")
            tier["base_fee_interval"] = base_fee.get("interval") if base_fee.get("interval") in INTERVALS else ""
        raw_tier_features = raw.get("features", {})
        if not isinstance(raw_tier_features, dict):
            check.error(f"{path}.features", "must be an object keyed by feature code")
            raw_tier_features = {}
        for feature_code, spec in raw_tier_features.items():
            feature_path = f"{path}.features.{feature_code}"
            if feature_code not in seen_features:
                check.error(feature_path, "unknown feature")
                continue
            if not check.object(spec, feature_path, TIER_FEATURE_KEYS):
                continue
            tier["features"][feature_code] = {
                "is_enabled": check.boolean(spec.get("isEnabled", True), f"{feature_path}.isEnabled"),
                "included_quantity": check.integer(spec.get("includedQuantity", 0), f"{feature_path}.includedQuantity") or 0,
                "quantity_limit": check.integer(spec.get("quantityLimit"), f"{feature_path}.quantityLimit", nullable=True),
                "config": check.json_object(spec.get("config", {}), f"{feature_path}.config"),
                "stripe_price_id": check.string(spec.get("stripePriceId"), f"{feature_path}.stripePriceId", max_length=100),
            }
        tiers.append(tier)
    if check.errors:
        raise CatalogError(check.errors)
    return {"product": product, "features": features, "tiers": tiers}


# --- loading ------------------------------------------------------------------------


def _upsert(model, lookup: dict[str, Any], values: dict[str, Any]) -> tuple[Any, str]:
    """(object, "created" | "updated" | "unchanged"); saves only on change."""
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        return model.objects.create(**lookup, **values), "created"
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    if not changed:
        return obj, "unchanged"
    for name in changed:
        setattr(obj, name, values[name])
    obj.save()
    return obj, "updated"


def catalog_load(*, data: Any) -> CatalogLoadResult:
    """Validate then upsert the whole catalog in one transaction. Loading the
    same file twice changes nothing (no writes at all the second time)."""
    spec = catalog_validate(data)
    result = CatalogLoadResult(product_code=spec["product"]["code"])

    def record(label: str, status: str) -> None:
        if status == "created":
            result.created.append(label)
        elif status == "updated":
            result.updated.append(label)
        else:
            result.unchanged += 1

    with transaction.atomic():
        product, status = _upsert(Product, {"code": spec["product"]["code"]}, {"name": spec["product"]["name"]})
        if spec["product"].get("customer_pool", product.customer_pool) != product.customer_pool:
            try:
                product_customer_pool_set(product=product, customer_pool=spec["product"]["customer_pool"])
            except ApplicationError as error:
                raise CatalogError([f"product.customerPool: {error.message}"]) from None
            status = "updated" if status == "unchanged" else status
        record(f"product {product.code}", status)
        features: dict[str, Feature] = {}
        for feature_spec in spec["features"]:
            values = {key: value for key, value in feature_spec.items() if key != "code"}
            feature, status = _upsert(Feature, {"product": product, "code": feature_spec["code"]}, values)
            features[feature.code] = feature
            record(f"feature {feature.code}", status)

        default_code = next((tier["code"] for tier in spec["tiers"] if tier["is_default"]), None)
        if default_code is not None:
            # The partial unique index allows one default: clear the others first.
            for tier in Tier.objects.filter(product=product, is_default=True).exclude(code=default_code):
                tier.is_default = False
                tier.save(update_fields=["is_default", "updated_at"])
                record(f"tier {tier.code}", "updated")
        for tier_spec in spec["tiers"]:
            values = {key: value for key, value in tier_spec.items() if key not in ("code", "features")}
            tier, status = _upsert(Tier, {"product": product, "code": tier_spec["code"]}, values)
            for feature_code, tier_feature_spec in tier_spec["features"].items():
                _, feature_status = _upsert(
                    TierFeature, {"tier": tier, "feature": features[feature_code]}, tier_feature_spec
                )
                if feature_status != "unchanged":
                    status = "updated" if status == "unchanged" else status
            stale = TierFeature.objects.filter(tier=tier).exclude(feature__code__in=list(tier_spec["features"]))
            if stale.exists():
                for tier_feature in stale:
                    tier_feature.delete()
                status = "updated" if status == "unchanged" else status
            record(f"tier {tier.code}", status)

        file_features = {feature["code"] for feature in spec["features"]}
        file_tiers = {tier["code"] for tier in spec["tiers"]}
        result.not_in_file = [
            f"feature {code}"
            for code in Feature.objects.filter(product=product).exclude(code__in=file_features).values_list("code", flat=True)
        ] + [
            f"tier {code}"
            for code in Tier.objects.filter(product=product).exclude(code__in=file_tiers).values_list("code", flat=True)
        ]
    return result


# --- dumping ------------------------------------------------------------------------


def catalog_dump(*, product: Product) -> dict[str, Any]:
    """The product's catalog in the load format; loading it back is a no-op."""
    features = []
    for feature in Feature.objects.filter(product=product).order_by("code"):
        item: dict[str, Any] = {"code": feature.code, "name": feature.name, "kind": feature.kind}
        if feature.description:
            item["description"] = feature.description
        if feature.unit:
            item["unit"] = feature.unit
        if feature.kind == FeatureKind.METERED:
            item["resetPeriod"] = feature.reset_period or ResetPeriod.MONTHLY
        if feature.stripe_meter_event_name:
            item["stripeMeterEventName"] = feature.stripe_meter_event_name
        if feature.credit_cost is not None:
            item["creditCost"] = feature.credit_cost
        if feature.default_config:
            item["defaultConfig"] = feature.default_config
        if feature.kind == FeatureKind.METERED and feature.alert_thresholds != list(DEFAULT_ALERT_THRESHOLDS):
            item["alertThresholds"] = feature.alert_thresholds
        if feature.dimensions:
            item["dimensions"] = feature.dimensions
        features.append(item)
    tiers = []
    for tier in Tier.objects.filter(product=product).order_by("display_order", "code").prefetch_related("tier_features__feature"):
        item = {"code": tier.code, "name": tier.name}
        if tier.description:
            item["description"] = tier.description
        item.update({"displayOrder": tier.display_order, "default": tier.is_default, "isActive": tier.is_active})
        if tier.base_fee_unit_amount is not None:
            item["baseFee"] = {
                "stripePriceId": tier.base_fee_stripe_price_id,
                "unitAmount": tier.base_fee_unit_amount,
                "currency": tier.base_fee_currency,
                "interval": tier.base_fee_interval,
            }
        if tier.credits_per_cycle:
            item["creditsPerCycle"] = tier.credits_per_cycle
        tier_features: dict[str, Any] = {}
        for tier_feature in sorted(tier.tier_features.all(), key=lambda tf: tf.feature.code):
            spec: dict[str, Any] = {}
            if not tier_feature.is_enabled:
                spec["isEnabled"] = False
            if tier_feature.included_quantity:
                spec["includedQuantity"] = tier_feature.included_quantity
            if tier_feature.quantity_limit is not None:
                spec["quantityLimit"] = tier_feature.quantity_limit
            if tier_feature.config:
                spec["config"] = tier_feature.config
            if tier_feature.stripe_price_id:
                spec["stripePriceId"] = tier_feature.stripe_price_id
            tier_features[tier_feature.feature.code] = spec
        item["features"] = tier_features
        tiers.append(item)
    dumped_product = {"code": product.code, "name": product.name}
    if product.customer_pool != product.code:
        dumped_product["customerPool"] = product.customer_pool
    return {"product": dumped_product, "features": features, "tiers": tiers}
