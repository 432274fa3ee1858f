"""Segment criteria (SPEC §8): the one home of their rules — what a valid
criteria document is (`criteria_validate`, called by the admin form,
`load_segments` and the services) and what it means as a query over a
product's accounts (`criteria_filter`, used by the sync).

A document is a group, `{"all": [...]}` or `{"any": [...]}`, whose items are
groups again (at most `MAX_DEPTH` levels) or conditions
`{"field": F, "op": OP, "value": V}`. Errors are `path: message` lines whose
path names the offending part the way the catalog's do
(`criteria.all[2].op: unknown operator "like" …`).

Every condition becomes a SQL condition over `Account` rows (the company ×
product of SPEC §2), so a segment's members are one query however many
companies there are; nothing is evaluated in Python."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field as dataclass_field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.db.models import BigIntegerField, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.fields.json import HasKey, KeyTextTransform, KeyTransform
from django.db.models.functions import Coalesce
from django.utils.dateparse import parse_date, parse_datetime

from companies.models import CompanyStatus
from companies.profile import CompanySize, country_error, currency_error, locale_error, timezone_error
from config.errors import BadRequest

from .error_codes import InsightsErrorCode
from .models import RiskLevel

RISK_LEVELS = tuple(RiskLevel.values)

OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists")
ORDER_OPS = frozenset({"gt", "gte", "lt", "lte"})
GROUP_KEYS = ("all", "any")
CONDITION_KEYS = frozenset({"field", "op", "value"})
MAX_DEPTH = 5  # groups inside the root group, the root being level 1
MAX_CONDITIONS = 50
MAX_ITEMS = 50  # per group
MAX_IN_VALUES = 100
MAX_TEXT = 200
MAX_INT = 2**63 - 1
METADATA_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
FEATURE_CODE = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")
# "30 days ago" for date fields: evaluated at each sync (engagement segments).
RELATIVE_TIME = re.compile(r"^-(\d{1,5})([dh])$")


class SegmentError(BadRequest):
    """Invalid segment input; `errors` are `path: message` lines, also given as
    `details.fields` (path → messages) like any other 400 (CatalogError's shape)."""

    reason = InsightsErrorCode.SEGMENT_INVALID

    def __init__(self, errors: list[str]):
        self.errors = errors
        fields: dict[str, list[str]] = {}
        for line in errors:
            path, _, message = line.partition(": ")
            fields.setdefault(path if message else "segment", []).append(message or line)
        super().__init__("\n".join(errors), details={"fields": fields})


# --- Fields ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """What a field accepts. `kind`: text (free text, compared case-insensitively),
    code (a closed or normalised set, compared exactly), integer, datetime or
    json (a metadata value). `optional`: the field can be absent (so `exists`
    applies and `ne` includes companies without a value)."""

    kind: str
    ops: frozenset
    optional: bool = False
    check: Callable[[str], str | None] | None = None
    normalise: Callable[[str], str] | None = None
    choices: tuple[str, ...] = ()


def _choice_check(choices: tuple[str, ...]) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f'"{value}" is not one of {", ".join(choices)}'

    return check


_EQUALITY = frozenset({"eq", "ne", "in"})
_TEXT_OPS = _EQUALITY | {"contains", "exists"}
_NUMBER_OPS = _EQUALITY | ORDER_OPS

FIELDS: dict[str, FieldSpec] = {
    "tier": FieldSpec("code", _EQUALITY | {"exists"}, optional=True),
    "status": FieldSpec("code", _EQUALITY, check=_choice_check(tuple(CompanyStatus.values)), choices=tuple(CompanyStatus.values)),
    "mrr": FieldSpec("integer", _NUMBER_OPS),
    "healthScore": FieldSpec("integer", _NUMBER_OPS | {"exists"}, optional=True),
    "riskLevel": FieldSpec("code", _EQUALITY | {"exists"}, optional=True, check=_choice_check(RISK_LEVELS), choices=RISK_LEVELS),
    "createdAt": FieldSpec("datetime", ORDER_OPS),
    "country": FieldSpec("code", _EQUALITY | {"exists"}, optional=True, check=country_error, normalise=str.upper),
    "industry": FieldSpec("text", _TEXT_OPS, optional=True),
    "size": FieldSpec("code", _EQUALITY | {"exists"}, optional=True, check=_choice_check(tuple(CompanySize.values)), choices=tuple(CompanySize.values)),
    "timezone": FieldSpec("code", _EQUALITY | {"contains", "exists"}, optional=True, check=timezone_error),
    "locale": FieldSpec("code", _EQUALITY | {"exists"}, optional=True, check=locale_error),
    "currency": FieldSpec("code", _EQUALITY, check=currency_error, normalise=str.lower),
    "lifetimeValue": FieldSpec("integer", _NUMBER_OPS),
    "lastActivityAt": FieldSpec("datetime", ORDER_OPS | {"exists"}, optional=True),
    "credits.balance": FieldSpec("integer", _NUMBER_OPS | {"exists"}, optional=True),
}
USAGE_SPEC = FieldSpec("integer", _NUMBER_OPS)
METADATA_SPEC = FieldSpec("json", frozenset(OPS), optional=True)
FIELD_NAMES = (*FIELDS, "metadata.<key>", "usage.<featureCode>")


def field_spec(name: str) -> FieldSpec | None:
    if name in FIELDS:
        return FIELDS[name]
    if name.startswith("metadata.") and METADATA_KEY.match(name.removeprefix("metadata.")):
        return METADATA_SPEC
    if name.startswith("usage.") and FEATURE_CODE.match(name.removeprefix("usage.")):
        return USAGE_SPEC
    return None


# --- Validation -----------------------------------------------------------------------


@dataclass
class _Walk:
    errors: list[str] = dataclass_field(default_factory=list)
    conditions: int = 0
    # (path, code) of tier and usage.<featureCode> values, checked against the product.
    tier_codes: list[tuple[str, str]] = dataclass_field(default_factory=list)
    feature_codes: list[tuple[str, str]] = dataclass_field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")


def criteria_validate(criteria: Any, *, path: str = "criteria", product_id: UUID | None = None) -> dict:
    """The cleaned criteria (values normalised: country upper case, currency
    lower case; `exists` without a value means `true`), or SegmentError listing
    every problem with its path. With `product_id`, tier codes and
    `usage.<featureCode>` must name the product's tiers and metered features."""
    walk = _Walk()
    cleaned = _group(criteria, path, depth=1, walk=walk)
    if walk.conditions > MAX_CONDITIONS:
        walk.error(path, f"at most {MAX_CONDITIONS} conditions in all (found {walk.conditions})")
    if product_id is not None and not walk.errors:
        _check_codes(walk, product_id=product_id)
    if walk.errors:
        raise SegmentError(walk.errors)
    return cleaned


def _group(value: Any, path: str, *, depth: int, walk: _Walk) -> dict:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in GROUP_KEYS:
        walk.error(path, 'must be an object with one key, "all" or "any", holding a list of conditions')
        return {}
    if depth > MAX_DEPTH:
        walk.error(path, f"groups are nested more than {MAX_DEPTH} levels deep")
        return {}
    key, items = next(iter(value.items()))
    path = f"{path}.{key}"
    if not isinstance(items, list):
        walk.error(path, "must be a list")
        return {}
    if key == "any" and not items:
        walk.error(path, 'must hold at least one condition (an empty "any" matches nobody)')
    if len(items) > MAX_ITEMS:
        walk.error(path, f"at most {MAX_ITEMS} items")
        return {}
    cleaned = []
    for index, item in enumerate(items):
        item_path = f"{path}[{index}]"
        if isinstance(item, dict) and any(group_key in item for group_key in GROUP_KEYS):
            cleaned.append(_group(item, item_path, depth=depth + 1, walk=walk))
        else:
            cleaned.append(_condition(item, item_path, walk=walk))
    return {key: cleaned}


def _condition(value: Any, path: str, *, walk: _Walk) -> dict:
    walk.conditions += 1
    if not isinstance(value, dict):
        walk.error(path, 'must be a condition {"field", "op", "value"} or a group {"all"|"any": [...]}')
        return {}
    for key in sorted(set(value) - CONDITION_KEYS, key=str):
        walk.error(f"{path}.{key}", "unknown field")
    name, op = value.get("field"), value.get("op")
    spec = None
    if not isinstance(name, str) or not name:
        walk.error(f"{path}.field", "is required (a string)")
    elif (spec := field_spec(name)) is None:
        walk.error(f"{path}.field", f'unknown field "{name[:100]}" (one of {", ".join(FIELD_NAMES)})')
    if not isinstance(op, str) or not op:
        walk.error(f"{path}.op", "is required (a string)")
        return {}
    if op not in OPS:
        walk.error(f"{path}.op", f'unknown operator "{op[:100]}" (one of {", ".join(OPS)})')
        return {}
    if spec is None:
        return {}
    if op not in spec.ops:
        allowed = ", ".join(candidate for candidate in OPS if candidate in spec.ops)
        walk.error(f"{path}.op", f'"{op}" does not apply to {name} (use {allowed})')
        return {}
    if name.startswith("usage."):
        walk.feature_codes.append((f"{path}.field", name.removeprefix("usage.")))
    cleaned_value = _value(value, name=name, op=op, spec=spec, path=f"{path}.value", walk=walk)
    return {"field": name, "op": op, "value": cleaned_value}


def _value(condition: dict, *, name: str, op: str, spec: FieldSpec, path: str, walk: _Walk):
    if op == "exists":
        value = condition.get("value", True)
        if not isinstance(value, bool):
            walk.error(path, "must be true or false (or left out: true)")
        return value
    if "value" not in condition:
        walk.error(path, "is required")
        return None
    value = condition["value"]
    if op == "in":
        if not isinstance(value, list) or not value:
            walk.error(path, "must be a non-empty list")
            return []
        if len(value) > MAX_IN_VALUES:
            walk.error(path, f"at most {MAX_IN_VALUES} values")
            return []
        return [_scalar(item, name=name, op=op, spec=spec, path=f"{path}[{index}]", walk=walk) for index, item in enumerate(value)]
    return _scalar(value, name=name, op=op, spec=spec, path=path, walk=walk)


def _scalar(value: Any, *, name: str, op: str, spec: FieldSpec, path: str, walk: _Walk):
    if spec.kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int) or not -MAX_INT <= value <= MAX_INT:
            walk.error(path, "must be a whole number")
            return None
        return value
    if spec.kind == "datetime":
        if not isinstance(value, str) or time_value(value, now=datetime.now(UTC)) is None:
            walk.error(path, 'must be an ISO 8601 date or datetime (e.g. "2026-01-31", "2026-01-31T12:00:00Z") '
                       'or a time ago ("-30d", "-12h")')
            return None
        return value
    if spec.kind == "json":
        if op in ORDER_OPS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            walk.error(path, "must be a number")
            return None
        if op == "contains" and not isinstance(value, str):
            walk.error(path, "must be a string")
            return None
        if value is not None and not isinstance(value, (str, int, float, bool)):
            walk.error(path, "must be a string, a number, true, false or null")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            walk.error(path, "must be a finite number")
            return None
        if isinstance(value, str) and "\x00" in value:
            walk.error(path, "must not contain NUL characters")
            return None
        if isinstance(value, str) and len(value) > MAX_TEXT:
            walk.error(path, f"must be at most {MAX_TEXT} characters")
            return None
        return value
    # text and code
    if not isinstance(value, str) or not value.strip():
        walk.error(path, "must be a non-empty string")
        return None
    if "\x00" in value:
        walk.error(path, "must not contain NUL characters")
        return None
    if len(value) > MAX_TEXT:
        walk.error(path, f"must be at most {MAX_TEXT} characters")
        return None
    value = value.strip()
    if spec.normalise:
        value = spec.normalise(value)
    if spec.check and op != "contains" and (message := spec.check(value)):
        walk.error(path, message)
        return None
    if name == "tier":
        walk.tier_codes.append((path, value))
    return value


def _check_codes(walk: _Walk, *, product_id: UUID) -> None:
    from entitlements.models import Feature, FeatureKind, Tier

    if walk.tier_codes:
        known = set(Tier.objects.filter(product_id=product_id).values_list("code", flat=True))
        for path, code in walk.tier_codes:
            if code not in known:
                walk.error(path, f'unknown tier "{code}" in this product')
    if walk.feature_codes:
        kinds = dict(
            Feature.objects.filter(product_id=product_id, code__in={code for _, code in walk.feature_codes})
            .values_list("code", "kind")
        )
        for path, code in walk.feature_codes:
            if code not in kinds:
                walk.error(path, f'unknown feature "{code}" in this product')
            elif kinds[code] != FeatureKind.METERED:
                walk.error(path, f'"{code}" is not a metered feature (only metered features have usage)')


def criteria_feature_codes(criteria: dict) -> list[str]:
    """The feature codes of the `usage.<featureCode>` conditions."""
    return sorted({condition["field"].removeprefix("usage.") for condition in criteria_conditions(criteria)
                   if condition["field"].startswith("usage.")})


def criteria_conditions(criteria: dict):
    """Every condition of a (valid) criteria document, depth first."""
    for items in criteria.values():
        for item in items:
            if any(key in item for key in GROUP_KEYS):
                yield from criteria_conditions(item)
            else:
                yield item


def time_value(value: str, *, now: datetime) -> datetime | None:
    """A date field's value as an aware datetime: ISO date (UTC midnight) or
    datetime (naive = UTC), or "-Nd"/"-Nh" before `now`. None if invalid."""
    if match := RELATIVE_TIME.match(value):
        amount, unit = int(match.group(1)), match.group(2)
        return now - (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = datetime(day.year, day.month, day.day)
    except ValueError:
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --- Evaluation -----------------------------------------------------------------------

# Fields that are columns of Account (or of its company / health row).
COLUMNS = {
    "status": "status",
    "mrr": "mrr",
    "currency": "currency",
    "lifetimeValue": "lifetime_value",
    "lastActivityAt": "last_activity_at",
    "createdAt": "company__created_at",
    "country": "company__country",
    "industry": "company__industry",
    "size": "company__size",
    "timezone": "company__timezone",
    "locale": "company__locale",
    "healthScore": "health__score",
    "riskLevel": "health__risk_level",
}


@dataclass
class CriteriaFilter:
    """A criteria document as SQL over `Account`: apply with
    `accounts.annotate(**f.annotations).filter(f.q)`."""

    q: Q
    annotations: dict[str, Any]

    def apply(self, accounts):
        return accounts.annotate(**self.annotations).filter(self.q) if self.annotations else accounts.filter(self.q)


class _Translator:
    def __init__(self, *, product_id: UUID, now: datetime) -> None:
        self.product_id = product_id
        self.now = now
        self.annotations: dict[str, Any] = {}
        self._aliases: dict[tuple, str] = {}

    def alias(self, key: tuple, expression) -> str:
        if key not in self._aliases:
            self._aliases[key] = f"_segment_{len(self._aliases)}"
            self.annotations[self._aliases[key]] = expression
        return self._aliases[key]

    def group(self, criteria: dict) -> Q:
        (key, items), = criteria.items()
        parts = [self.group(item) if any(k in item for k in GROUP_KEYS) else self.condition(item) for item in items]
        if not parts:
            return Q() if key == "all" else Q(pk__in=[])
        combined = parts[0]
        for part in parts[1:]:
            combined = (combined & part) if key == "all" else (combined | part)
        return combined

    def condition(self, condition: dict) -> Q:
        name, op, value = condition["field"], condition["op"], condition["value"]
        spec = field_spec(name)
        if name == "tier":
            return self.tier(op, value)
        if name.startswith("metadata."):
            return self.metadata(name.removeprefix("metadata."), op, value)
        if name == "credits.balance" and op == "exists":
            return self.wallet_exists() if value else ~self.wallet_exists()
        if name == "credits.balance":
            column = self.alias(("credits",), Coalesce(self._wallet_balance(), Value(0), output_field=BigIntegerField()))
        elif name.startswith("usage."):
            column = self.alias(("usage", name), self._usage(name.removeprefix("usage.")))
        else:
            column = COLUMNS[name]
        if spec.kind == "datetime" and op != "exists":
            value = time_value(value, now=self.now)
        return self.compare(column, op, value, spec)

    def compare(self, column: str, op: str, value, spec: FieldSpec) -> Q:
        text = spec.kind == "text"
        if op == "exists":
            present = ~Q(**{f"{column}__isnull": True})
            if spec.kind in ("text", "code"):
                present &= ~Q(**{column: ""})
            return present if value else ~present
        if op == "eq":
            return Q(**{f"{column}__iexact" if text else column: value})
        if op == "ne":
            different = ~Q(**{f"{column}__iexact" if text else column: value})
            return different | Q(**{f"{column}__isnull": True}) if spec.optional else different
        if op == "in":
            if not text:
                return Q(**{f"{column}__in": value})
            return _any_of([Q(**{f"{column}__iexact": item}) for item in value])
        if op == "contains":
            return Q(**{f"{column}__icontains": value})
        return Q(**{f"{column}__{op}": value})

    def tier(self, op: str, value) -> Q:
        from entitlements.models import FeatureAccess

        # The tier layer in force: rows a tier grants and enables (a tier
        # change leaves the old tier's other features disabled, still naming
        # it) — the company list's tier filter reads the same rows.
        rows = FeatureAccess.objects.filter(
            company_id=OuterRef("company_id"), tier__product_id=self.product_id, tier_granted=True, is_enabled=True
        )
        if op == "exists":
            return Q(Exists(rows)) if value else ~Q(Exists(rows))
        codes = value if op == "in" else [value]
        has = Q(Exists(rows.filter(tier__code__in=codes)))
        return ~has if op == "ne" else has

    def metadata(self, key: str, op: str, value) -> Q:
        # Keys are compared as values (HasKey) or through an annotation, never
        # spliced into a lookup path, so any key is safe ("contains", "a__b").
        has_key = Q(HasKey(F("metadata"), key))
        if op == "exists":
            return has_key if value else ~has_key
        if op == "contains":
            text = self.alias(("metadata text", key), KeyTextTransform(key, "metadata"))
            return has_key & Q(**{f"{text}__icontains": value})
        item = self.alias(("metadata", key), KeyTransform(key, "metadata"))
        if op in ORDER_OPS:
            return has_key & Q(**{f"{item}__{op}": value})
        values = value if op == "in" else [value]
        equal = has_key & _any_of([Q(**{item: each}) for each in values])
        return ~equal if op == "ne" else equal

    def _usage(self, feature_code: str):
        from metering.models import UsageMeter

        # The meter of the period containing `now` (meters are made per period,
        # so this is the usage the feature check reports); none yet reads 0.
        meter = (
            UsageMeter.objects.filter(
                company_id=OuterRef("company_id"),
                feature__product_id=self.product_id,
                feature__code=feature_code,
                period_start__lte=self.now,
            )
            .filter(Q(period_end__isnull=True) | Q(period_end__gt=self.now))
            .order_by("-period_start")
            .values("value")[:1]
        )
        return Coalesce(Subquery(meter), Value(0), output_field=BigIntegerField())

    def _wallets(self):
        from credits.models import Wallet

        return Wallet.objects.filter(company_id=OuterRef("company_id"), product_id=OuterRef("product_id"))

    def wallet_exists(self) -> Q:
        return Q(Exists(self._wallets()))

    def _wallet_balance(self):
        # Wallet.total: the lots' balance less the debt.
        balance = self._wallets().annotate(
            balance=F("balance_subscription") + F("balance_promotional") + F("balance_topup") - F("debt")
        )
        return Subquery(balance.values("balance")[:1], output_field=BigIntegerField())


def _any_of(parts: list[Q]) -> Q:
    combined = parts[0]
    for part in parts[1:]:
        combined |= part
    return combined


def criteria_filter(criteria_chain: list[dict], *, product_id: UUID, now: datetime) -> CriteriaFilter:
    """The SQL form of a segment's criteria and its ancestors' (`criteria_chain`,
    all of them must hold: a child's members are also its parent's), for the
    accounts of `product_id`, with time values and usage periods taken at `now`."""
    translator = _Translator(product_id=product_id, now=now)
    q = Q()
    for criteria in criteria_chain:
        q &= translator.group(criteria)
    return CriteriaFilter(q=q, annotations=translator.annotations)
