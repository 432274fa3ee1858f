"""The data migration of issue 14 (`0007_hand_rows_to_overrides`) turns
hand-set rows into overrides without changing any company's effective
access: every check is computed before (with the rule of the time, frozen
below) and after, and they must agree."""

import importlib
from datetime import timedelta
from itertools import product as cartesian

import pytest
from django.apps import apps as django_apps
from django.utils import timezone

from entitlements.models import FeatureAccess, TierFeature
from entitlements.services import tier_apply
from entitlements.actors import Actor
from metering.selectors import feature_checks
from tests.factories.companies import CompanyFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db

migration = importlib.import_module("entitlements.migrations.0007_hand_rows_to_overrides")

COMPARED = ("is_enabled", "can_use", "quantity_limit", "included_quantity", "remaining", "config_values", "status")


def old_check(feature, row, at):
    """The check of one company × feature as it was decided before access
    layers (usage 0, no credits): a row was the access, in force inside its
    window and enabled, disabled otherwise."""
    metered = feature.kind == "metered"
    if row is None:
        return {
            "is_enabled": False, "can_use": False, "quantity_limit": None, "included_quantity": 0,
            "remaining": 0 if metered else None, "config_values": dict(feature.default_config or {}),
            "status": "not_granted",
        }
    enabled = (
        row.is_enabled
        and (row.valid_from is None or row.valid_from <= at)
        and (row.valid_until is None or at < row.valid_until)
    )
    limit = row.quantity_limit
    under = not metered or limit is None or 0 < limit
    has_credits = feature.credit_cost is None or 1 <= row.included_quantity
    status = "disabled" if not enabled else "limit_reached" if not under else "no_credits" if not has_credits else "active"
    remaining = (0 if not enabled else (None if limit is None else max(0, limit))) if metered else None
    return {
        "is_enabled": enabled, "can_use": status == "active", "quantity_limit": limit,
        "included_quantity": row.included_quantity, "remaining": remaining,
        "config_values": {**(feature.default_config or {}), **(row.config or {})}, "status": status,
    }


def test_every_check_is_the_same_before_and_after_the_migration(product, features, tiers):
    now = timezone.now()
    windows = {
        "open": (None, None),
        "running": (now - timedelta(days=1), now + timedelta(days=1)),
        "expired": (None, now - timedelta(hours=1)),
        "future": (now + timedelta(days=2), None),
    }
    sources = ["subscription", "manual", "trial", "api"]
    codes = ["ai_credit", "ai_image", "team_seats", "sso"]
    companies = []
    for index, (source, enabled, window, from_tier, limit) in enumerate(
        cartesian(sources, [True, False], windows, [True, False], [None, 0, 40])
    ):
        company = CompanyFactory(name=f"Case {index}", short_id=f"case-{index}")
        ProductLinkFactory(product=product, company=company, external_org_id=f"org_{index}")
        if from_tier:
            tier_apply(company=company, tier=tiers["starter"], actor=Actor.system("setup"))
        valid_from, valid_until = windows[window]
        for code in codes[: 1 + index % len(codes)]:
            # A row as it looked before layers: hand-set values in the row itself.
            FeatureAccess.objects.update_or_create(
                company=company,
                feature=features[code],
                defaults={
                    "source": source,
                    "is_enabled": enabled,
                    "quantity_limit": limit,
                    "included_quantity": 3,
                    "config": {"maxSeats": 7} if code == "team_seats" else {},
                    "valid_from": valid_from if source != "subscription" else None,
                    "valid_until": valid_until if source != "subscription" else None,
                    "overrides": {},
                    "tier_granted": True,
                },
            )
        companies.append(company)

    def before_for(company):
        rows = {row.feature.code: row for row in FeatureAccess.objects.filter(company=company).select_related("feature")}
        return {code: old_check(feature, rows.get(code), now) for code, feature in features.items()}

    before = {company.pk: before_for(company) for company in companies}
    migration.hand_rows_to_overrides(django_apps, None)
    from entitlements import cache

    for company in companies:
        cache.invalidate_company_checks(company_id=company.pk)
        after = {
            check.feature_code: {name: getattr(check, name) for name in COMPARED}
            for check in feature_checks(product_id=product.pk, company_id=company.pk, at=now)
        }
        assert after == before[company.pk], company.name
    # Migrated rows are overrides with who/why; a running one over a tier
    # feature falls back to the tier when it ends.
    migrated = FeatureAccess.objects.exclude(source="subscription")
    assert migrated.exists() and all(row.overrides and row.reason for row in migrated)
    running = migrated.filter(valid_until=windows["running"][1], tier__isnull=False, is_enabled=True).first()
    assert running is not None
    tier_feature = TierFeature.objects.get(tier=running.tier, feature=running.feature)
    assert running.effective_at(windows["running"][1]).quantity_limit == tier_feature.quantity_limit


def test_the_migration_runs_backwards_and_forwards(transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("entitlements", "0006_access_layers")])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
