"""Writes of the entitlements app: set one company's access to a feature,
apply a tier. Every write records who/why in the FeatureAccess history and
invalidates the feature-check cache.

Locking protocol (PostgreSQL): a writer first takes the company row with
`SELECT … FOR NO KEY UPDATE`, then the company's access rows ordered by
primary key. The company lock serialises every entitlement write of one
company (two tier applies, a tier apply and a PATCH, two config merges), so
that (a) no config merge is lost, (b) the set of rows a tier apply disables
is the set it saw, and (c) the missing-row-then-create path cannot race into
the unique constraint. NO KEY UPDATE does not block inserts that merely
reference the company (usage events, contacts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from companies.models import Company
from companies.selectors import company_not_found, external_org_id_for
from companies.services.cleaning import merge_json
from config.errors import BadRequest, NotFound, PreconditionFailed

from . import cache as check_cache
from companies.actors import Actor
from .models import AccessSource, AccessWindowNotice, Feature, FeatureAccess, Tier
from .notifications import AccessChange, access_state, feature_access_changed_emit
from .rules import LAYER_FIELDS

# Service keyword → API field name, for error messages that name the field
# the caller actually sent.
API_FIELD_NAMES = {
    "is_enabled": "isEnabled",
    "quantity_limit": "quantityLimit",
    "included_quantity": "includedQuantity",
    "config": "config",
    "source": "source",
    "valid_from": "validFrom",
    "valid_until": "validUntil",
}
# API field name → service keyword, for callers that receive API-shaped input
# or errors (the admin's forms); derived here so the map has one home.
SERVICE_FIELD_FOR_API_NAME = {api: name for name, api in API_FIELD_NAMES.items()}
MAX_QUANTITY = 2**63 - 1
MAX_REASON_LENGTH = 2000


# --- validation ------------------------------------------------------------------


def _non_negative_int(value, *, name: str, nullable: bool) -> int | None:
    if value is None:
        if nullable:
            return None
        raise BadRequest.for_field(name, "Must be a whole number ≥ 0.")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUANTITY:
        raise BadRequest.for_field(name, "Must be a whole number ≥ 0.")
    return value


def _validate_config_patch(value, *, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest.for_field(name, "Must be a JSON object.")
    for key in value:
        if not isinstance(key, str) or not key:
            raise BadRequest.for_field(name, "Keys must be non-empty strings.")
    return value


def feature_access_validate_changes(*, changes: dict[str, Any], field_prefix: str = "") -> dict[str, Any]:
    """Validate a partial update of an access row (snake_case keys of
    API_FIELD_NAMES). Raises BadRequest naming the API field; returns the
    changes unchanged otherwise. Shared by the API and the admin forms."""
    errors: dict[str, list[str]] = {}
    for key, value in changes.items():
        name = field_prefix + API_FIELD_NAMES.get(key, key)
        try:
            if key not in API_FIELD_NAMES:
                raise BadRequest.for_field(name, "Unknown field.")
            if key == "is_enabled" and not isinstance(value, bool):
                raise BadRequest.for_field(name, "Must be true or false.")
            if key == "quantity_limit":
                _non_negative_int(value, name=name, nullable=True)
            if key == "included_quantity":
                _non_negative_int(value, name=name, nullable=False)
            if key == "config":
                _validate_config_patch(value, name=name)
            if key == "source" and value not in AccessSource.values:
                raise BadRequest.for_field(name, f"Must be one of: {', '.join(AccessSource.values)}.")
            if key in ("valid_from", "valid_until") and value is not None:
                if not isinstance(value, datetime) or timezone.is_naive(value):
                    raise BadRequest.for_field(name, "Must be an ISO 8601 time with a time zone.")
        except BadRequest as error:
            for field_name, messages in error.details["fields"].items():
                errors.setdefault(field_name, []).extend(messages)
    if errors:
        first = next(iter(errors))
        raise BadRequest(f"{first}: {errors[first][0]}", details={"fields": errors})
    return changes


def feature_access_window_validate(*, valid_from: datetime | None, valid_until: datetime | None) -> None:
    """A validity window must end after it starts (BadRequest on `validUntil`)."""
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise BadRequest.for_field("validUntil", "Must be after validFrom.")


# --- history and locks ---------------------------------------------------------------


def _save_with_history(access: FeatureAccess, *, actor: Actor, reason: str) -> None:
    """Save and leave one historical row saying who and why."""
    access._history_actor = str(actor)
    access._change_reason = (reason or "").strip()[:MAX_REASON_LENGTH] or None
    access._history_user = actor.user if actor.kind == "user" else None
    try:
        access.save()
    finally:
        for attribute in ("_history_actor", "_change_reason", "_history_user"):
            access.__dict__.pop(attribute, None)


def _lock_company(company_id) -> None:
    # Serialises all entitlement writes of one company (see the module docstring).
    if not Company.objects.select_for_update(no_key=True).filter(pk=company_id).values_list("pk", flat=True):
        raise company_not_found()


def _default_source(actor: Actor) -> str:
    return AccessSource.API if actor.kind == "api_key" else AccessSource.MANUAL


# --- feature access ------------------------------------------------------------------


def feature_access_set(
    *,
    company: Company,
    feature: Feature,
    changes: dict[str, Any],
    actor: Actor,
    reason: str = "",
    inherit: list[str] | tuple[str, ...] = (),
) -> FeatureAccess | None:
    """Write the company's override of `feature` (SPEC §4). A PATCH merges
    into the override in force (an expired one is replaced): fields it gives
    are set, fields it omits keep their override value, `inherit` (snake_case
    names of `rules.LAYER_FIELDS`) drops fields from the override so the
    tier's value shows again. `config` is merged key by key over the
    override's config (a key set to None is dropped). `source` defaults to
    the override's or `api` (API keys) / `manual` (staff); `subscription` is
    refused: the tier layer changes only through a tier. A new override on a
    feature the tier does not grant enables it unless `is_enabled` says
    otherwise. An override left with no field and no window is removed. No
    change → no write and no history row (None when there is no row)."""
    feature_access_validate_changes(changes=changes)
    if changes.get("source") == AccessSource.SUBSCRIPTION:
        raise BadRequest.for_field(
            "source", "The subscription layer changes only by applying a tier; give manual, trial, promotion or api."
        )
    unknown = [name for name in inherit if name not in LAYER_FIELDS]
    if unknown:
        raise BadRequest.for_field(
            "inherit", f"Unknown field {API_FIELD_NAMES.get(unknown[0], unknown[0])!r}; give any of isEnabled, quantityLimit, includedQuantity, config."
        )
    clashing = [name for name in inherit if name in changes]
    if clashing:
        raise BadRequest.for_field("inherit", f"{API_FIELD_NAMES[clashing[0]]} is both set and inherited.")
    with transaction.atomic():
        _lock_company(company.pk)
        access = FeatureAccess.objects.select_for_update().filter(company_id=company.pk, feature_id=feature.pk).first()
        created = access is None
        if created and not changes:
            return None
        now = timezone.now()
        if created:
            access = FeatureAccess(company=company, feature=feature, tier_granted=False, is_enabled=False)
        before = _snapshot(access)
        previous_state = None if created else access_state(access, at=now)
        if access.has_override and access.valid_until is not None and access.valid_until <= now:
            _override_clear(access)  # an expired override is replaced, not revived
        overrides = dict(access.overrides or {}) if access.has_override else {}
        if not access.has_override and not access.tier_granted and "is_enabled" not in changes:
            overrides["is_enabled"] = True
        for key, value in changes.items():
            if key == "config":
                overrides["config"] = merge_json(overrides.get("config") or {}, value)
            elif key in LAYER_FIELDS:
                overrides[key] = value
        for key in inherit:
            overrides.pop(key, None)
        access.valid_from = changes.get("valid_from", access.valid_from if access.has_override else None)
        access.valid_until = changes.get("valid_until", access.valid_until if access.has_override else None)
        feature_access_window_validate(valid_from=access.valid_from, valid_until=access.valid_until)
        if not overrides and access.valid_from is None and access.valid_until is None:
            if created:
                return None
            _override_clear(access)
        else:
            access.overrides = overrides
            access.source = changes.get("source") or (access.source if access.has_override else _default_source(actor))
        changed = created or _snapshot(access) != before
        if not changed:
            return access
        if access.has_override:
            access.set_by, access.set_at, access.reason = str(actor)[:255], now, (reason or "").strip()[:MAX_REASON_LENGTH]
        if not access.has_override and not access.tier_granted:
            _delete_with_history(access, actor=actor, reason=reason)
        else:
            _save_with_history(access, actor=actor, reason=reason)
        _access_changed(access, feature=feature, previous=previous_state, change=AccessChange.SET, reason=reason, at=now)
    return access


def feature_override_delete(*, company: Company, feature: Feature, actor: Actor, reason: str) -> bool:
    """Remove the company's override of `feature` (`DELETE …/override`): the
    tier layer shows again. A reason is required. False (and no change) when
    there is no override."""
    if not (reason or "").strip():
        raise BadRequest.for_field("reason", "Say why the override is removed.")
    with transaction.atomic():
        _lock_company(company.pk)
        access = FeatureAccess.objects.select_for_update().filter(company_id=company.pk, feature_id=feature.pk).first()
        if access is None or not access.has_override:
            return False
        now = timezone.now()
        previous_state = access_state(access, at=now)
        _override_clear(access)
        if access.tier_granted:
            _save_with_history(access, actor=actor, reason=reason)
        else:
            _delete_with_history(access, actor=actor, reason=reason)
        _access_changed(
            access, feature=feature, previous=previous_state, change=AccessChange.OVERRIDE_REMOVED, reason=reason, at=now
        )
    return True


def _override_clear(access: FeatureAccess) -> None:
    access.source = AccessSource.SUBSCRIPTION
    access.overrides = {}
    access.valid_from = access.valid_until = None
    access.set_by, access.set_at, access.reason = "", None, ""


def _delete_with_history(access: FeatureAccess, *, actor: Actor, reason: str) -> None:
    """A row with neither layer is deleted (the history keeps its deletion)."""
    access._history_actor = str(actor)
    access._change_reason = (reason or "").strip()[:MAX_REASON_LENGTH] or None
    access._history_user = actor.user if actor.kind == "user" else None
    access.delete()


def _access_changed(access, *, feature: Feature, previous, change: str, reason: str, at) -> None:
    feature_access_changed_emit(
        access=access,
        product_id=feature.product_id,
        feature_code=feature.code,
        previous=previous,
        change=change,
        reason=reason,
        at=at,
    )
    check_cache.invalidate_access(product_id=feature.product_id, company_id=access.company_id, feature_codes=[feature.code])


def _snapshot(access: FeatureAccess) -> tuple:
    return (
        access.tier_granted,
        access.is_enabled,
        access.quantity_limit,
        access.included_quantity,
        access.config,
        access.source,
        access.overrides,
        access.valid_from,
        access.valid_until,
        access.tier_id,
    )


# --- tiers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TierApplyResult:
    tier_code: str
    features_applied: list[str]
    features_removed: list[str]
    # Overrides that stay in force over the new tier layer:
    # [{"featureCode", "source", "validUntil"}].
    features_kept: list[dict[str, Any]] = field(default_factory=list)
    changed: bool = False


OVERRIDE_KEYS = {"included_quantity", "quantity_limit", "is_enabled", "config"}


def tier_overrides_validate(*, tier: Tier, overrides: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Check apply-time overrides `{feature_code: {included_quantity?,
    quantity_limit?, is_enabled?, config?}}`: an unknown feature is NotFound,
    a feature the tier lacks or a bad value is BadRequest naming
    `features.<code>.<field>`."""
    if not overrides:
        return {}
    if not isinstance(overrides, dict):
        raise BadRequest.for_field("features", "Must be a JSON object keyed by feature code.")
    tier_codes = {tier_feature.feature.code for tier_feature in tier.tier_features.select_related("feature")}
    product_codes = set(Feature.objects.filter(product_id=tier.product_id).values_list("code", flat=True))
    for code, override in overrides.items():
        if code not in product_codes:
            raise NotFound(f"Unknown feature {code!r}.", details={"fields": {f"features.{code}": ["Unknown feature."]}})
        if code not in tier_codes:
            raise BadRequest.for_field(f"features.{code}", f"Feature {code!r} is not part of tier {tier.code!r}.")
        if not isinstance(override, dict):
            raise BadRequest.for_field(f"features.{code}", "Must be a JSON object.")
        unknown = set(override) - OVERRIDE_KEYS
        if unknown:
            raise BadRequest.for_field(f"features.{code}.{API_FIELD_NAMES.get(min(unknown), min(unknown))}", "Unknown field.")
        feature_access_validate_changes(changes=override, field_prefix=f"features.{code}.")
    return overrides


def _override_kept(row: FeatureAccess, now: datetime) -> dict[str, Any] | None:
    """`featuresKept` entry of a row whose override is not over yet."""
    if not row.has_override or (row.valid_until is not None and row.valid_until <= now):
        return None
    return {"featureCode": row.feature.code, "source": row.source, "validUntil": row.valid_until}


def tier_apply_kept_preview(*, company_id, product_id=None) -> list[dict[str, Any]]:
    """What `tier_apply` would report in `featuresKept` if run now (any tier
    of the product: overrides survive every tier change), so the Apply
    tier… form can say it before it acts."""
    now = timezone.now()
    rows = FeatureAccess.objects.filter(company_id=company_id).select_related("feature").order_by("feature__code")
    if product_id is not None:
        rows = rows.filter(feature__product_id=product_id)
    return [entry for entry in (_override_kept(row, now) for row in rows) if entry is not None]


def tier_apply(
    *,
    company: Company,
    tier: Tier,
    overrides: dict[str, dict[str, Any]] | None = None,
    actor: Actor,
    reason: str = "",
    allow_inactive: bool = False,
) -> TierApplyResult:
    """Apply `tier` to the company (SPEC §4): the tier layer of every tier
    feature is set (the call's per-company values on top), the tier layer of
    features of the product that the tier lacks is switched off, overrides
    are never touched and are reported in `features_kept`, and a repeat
    changes nothing (no writes, no history). An inactive tier is refused with
    412 unless `allow_inactive` (re-applying a grandfathered subscription)."""
    if not tier.is_active and not allow_inactive:
        raise PreconditionFailed(f"Tier {tier.code!r} is not active.", details={"tierCode": tier.code})
    overrides = tier_overrides_validate(tier=tier, overrides=overrides)
    tier_features = list(tier.tier_features.select_related("feature").order_by("feature__code"))
    tier_feature_ids = {tier_feature.feature_id for tier_feature in tier_features}
    now = timezone.now()
    applied: list[str] = []
    removed: list[str] = []
    kept: list[dict[str, Any]] = []
    touched: list[str] = []
    reason = reason or f"Tier {tier.code} applied"
    with transaction.atomic():
        _lock_company(company.pk)
        external_org_id = external_org_id_for(product_id=tier.product_id, company_id=company.pk)

        def notify(row: FeatureAccess, previous, change: str) -> None:
            feature_access_changed_emit(
                access=row,
                product_id=tier.product_id,
                feature_code=row.feature.code,
                previous=previous,
                change=change,
                reason=reason,
                at=now,
                tier_code=tier.code,
                external_org_id=external_org_id,
            )

        rows = {
            row.feature_id: row
            for row in FeatureAccess.objects.select_for_update()
            .filter(company_id=company.pk, feature__product_id=tier.product_id)
            .select_related("feature")
            .order_by("pk")
        }
        for tier_feature in tier_features:
            code = tier_feature.feature.code
            row = rows.get(tier_feature.feature_id)
            override = overrides.get(code)
            if row is None:
                row = FeatureAccess(company=company, feature=tier_feature.feature)
            before = None if row._state.adding else _snapshot(row)
            previous_state = None if before is None else access_state(row, at=now)
            row.is_enabled = tier_feature.is_enabled
            row.quantity_limit = tier_feature.quantity_limit
            row.included_quantity = tier_feature.included_quantity
            row.config = dict(tier_feature.config or {})
            row.tier_granted = True
            row.tier = tier
            for key, value in (override or {}).items():
                if key == "config":
                    row.config = merge_json(row.config, value)
                else:
                    setattr(row, key, value)
            if before is None or _snapshot(row) != before:
                _save_with_history(row, actor=actor, reason=reason)
                notify(row, previous_state, AccessChange.TIER_APPLIED)
                touched.append(code)
            applied.append(code)
        for row in rows.values():
            if row.feature_id not in tier_feature_ids and row.tier_granted and row.is_enabled:
                previous_state = access_state(row, at=now)
                row.is_enabled = False
                _save_with_history(row, actor=actor, reason=reason)
                notify(row, previous_state, AccessChange.TIER_REMOVED)
                removed.append(row.feature.code)
                touched.append(row.feature.code)
        for row in sorted(rows.values(), key=lambda row: row.feature.code):
            entry = _override_kept(row, now)
            if entry is not None:
                kept.append(entry)
        if touched:
            check_cache.invalidate_access(product_id=tier.product_id, company_id=company.pk, feature_codes=touched)
    return TierApplyResult(
        tier_code=tier.code,
        features_applied=applied,
        features_removed=sorted(removed),
        features_kept=kept,
        changed=bool(touched),
    )


def tier_apply_default(*, company: Company, product_id, actor: Actor, reason: str = "") -> TierApplyResult | None:
    """Apply the product's default tier (onboarding without a tier, or when a
    subscription ends); None if the product has no active default tier."""
    from .selectors import tier_default_for_product

    tier = tier_default_for_product(product_id=product_id)
    if tier is None:
        return None
    return tier_apply(company=company, tier=tier, actor=actor, reason=reason or f"Default tier {tier.code} applied")


# --- access windows (the expire_overrides job) ------------------------------------------

# Boundaries older than this when the job first sees them are not notified
# (a job that was down for weeks does not replay history).
WINDOW_NOTICE_LOOKBACK = timedelta(days=7)


def access_windows_notify(*, now: datetime | None = None) -> int:
    """Emit `feature_access.changed` for every access window that started or
    ended since the row was last written (a write already notified its own
    change), exactly once per boundary (AccessWindowNotice). Invalidates the
    check cache of those rows. Returns the number of events emitted."""
    now = now or timezone.now()
    since = now - WINDOW_NOTICE_LOOKBACK
    boundary_passed = Q(valid_from__lte=now, valid_from__gt=since) & Q(valid_from__gt=F("updated_at"))
    boundary_passed |= Q(valid_until__lte=now, valid_until__gt=since) & Q(valid_until__gt=F("updated_at"))
    due = FeatureAccess.objects.filter(boundary_passed).exclude(source=AccessSource.SUBSCRIPTION)
    emitted = 0
    for access_id in due.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            access = FeatureAccess.objects.select_related("feature").filter(pk=access_id).first()
            if access is None:
                continue
            for boundary, at, change in (
                (AccessWindowNotice.Boundary.START, access.valid_from, AccessChange.WINDOW_STARTED),
                (AccessWindowNotice.Boundary.END, access.valid_until, AccessChange.WINDOW_ENDED),
            ):
                if at is None or not since < at <= now or at <= access.updated_at:
                    continue
                try:
                    with transaction.atomic():
                        AccessWindowNotice.objects.create(access=access, boundary=boundary, at=at)
                except IntegrityError:
                    continue  # notified already (another run)
                feature_access_changed_emit(
                    access=access,
                    product_id=access.feature.product_id,
                    feature_code=access.feature.code,
                    previous=None,
                    change=change,
                    reason="Access window started" if boundary == AccessWindowNotice.Boundary.START else "Access window ended",
                    at=now,
                    tier_code=None,
                )
                check_cache.invalidate_access(
                    product_id=access.feature.product_id, company_id=access.company_id, feature_codes=[access.feature.code]
                )
                emitted += 1
    return emitted


# --- merge (SPEC §3; desk.services.company_merge orchestrates) ----------------------

OVERRIDE_FIELDS = ("source", "overrides", "set_by", "set_at", "reason", "valid_from", "valid_until")


def feature_access_merge(
    *, source: Company, target: Company, actor: Actor, reason: str, moved_links: list[tuple] = ()
) -> int:
    """Entitlements' part of a merge: the duplicate's access rows for
    features the kept company has no row for move over whole (both layers);
    where both have a row, the kept company keeps its tier layer and its own
    override, and takes the duplicate's override only when it has none in
    force (SPEC §3 "access overrides the kept company lacks" — the kept
    company's word wins, never the more generous one). The duplicate's rows
    are then deleted (their history stays). Expired overrides do not move.
    `moved_links` ((product id, external org id) of the links the merge
    re-points) are forgotten by the check cache. Returns the overrides moved.
    The caller holds both company locks (`companies_lock_pair`)."""
    now = timezone.now()
    history_reason = f"Merged into {target.name} ({target.pk}): {reason}"
    kept = {row.feature_id: row for row in FeatureAccess.objects.select_for_update().filter(company=target)}
    moved = 0
    rows = FeatureAccess.objects.select_for_update().filter(company=source).order_by("pk")
    for row in rows:
        override_live = row.has_override and not (row.valid_until is not None and row.valid_until <= now)
        into = kept.get(row.feature_id)
        if into is None:
            if row.has_override and not override_live:
                _override_clear(row)
            row.company = target
            _save_with_history(row, actor=actor, reason=history_reason)
            moved += int(override_live)
            continue
        into_override_live = into.has_override and not (into.valid_until is not None and into.valid_until <= now)
        if override_live and not into_override_live:
            for name in OVERRIDE_FIELDS:
                setattr(into, name, getattr(row, name))
            _save_with_history(into, actor=actor, reason=history_reason)
            moved += 1
        _delete_with_history(row, actor=actor, reason=history_reason)
    check_cache.invalidate_company_checks(company_id=source.pk)
    check_cache.invalidate_company_checks(company_id=target.pk)
    for product_id, external_org_id in moved_links:
        check_cache.invalidate_link(product_id=product_id, company_id=source.pk, external_org_id=external_org_id)
        check_cache.invalidate_link(product_id=product_id, company_id=target.pk, external_org_id=external_org_id)
    return moved
