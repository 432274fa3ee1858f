"""`feature_access.changed` through the outbox (SPEC §4, §11): on a set, on a
tier apply, and when an access window starts or ends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from config.errors import BadRequest
from entitlements.models import FeatureAccess
from entitlements.services import access_windows_notify, feature_access_set, tier_apply
from notifications.models import Event

pytestmark = pytest.mark.django_db


def _changes():
    return list(Event.objects.filter(type="feature_access.changed").order_by("created_at", "id"))


def test_set_emits_with_before_and_after(company, features, staff_actor):
    feature_access_set(company=company, feature=features["ai_credit"], changes={"quantity_limit": 500}, actor=staff_actor, reason="bigger plan")
    [created] = _changes()
    assert created.data["change"] == "access_set" and created.data["previous"] is None
    assert created.data["featureCode"] == "ai_credit" and created.data["externalOrgId"] == "org_acme"
    assert created.data["access"]["quantityLimit"] == 500 and created.data["access"]["inForce"] is True
    assert created.data["reason"] == "bigger plan"
    feature_access_set(company=company, feature=features["ai_credit"], changes={"is_enabled": False}, actor=staff_actor)
    changed = _changes()[1]
    assert changed.data["previous"]["isEnabled"] is True and changed.data["access"]["isEnabled"] is False
    # No change, no event.
    feature_access_set(company=company, feature=features["ai_credit"], changes={"is_enabled": False}, actor=staff_actor)
    assert len(_changes()) == 2


def test_refused_set_emits_nothing(company, features, staff_actor):
    now = timezone.now()
    with pytest.raises(BadRequest):
        feature_access_set(
            company=company,
            feature=features["ai_credit"],
            changes={"valid_from": now, "valid_until": now - timedelta(days=1)},
            actor=staff_actor,
        )
    assert _changes() == []


def test_tier_apply_emits_per_changed_feature_and_nothing_on_repeat(company, tiers, staff_actor):
    result = tier_apply(company=company, tier=tiers["pro"], actor=staff_actor)
    events = _changes()
    assert sorted(e.data["featureCode"] for e in events) == sorted(result.features_applied)
    assert {e.data["change"] for e in events} == {"tier_applied"} and {e.data["tierCode"] for e in events} == {"pro"}
    tier_apply(company=company, tier=tiers["pro"], actor=staff_actor)
    assert len(_changes()) == len(events)
    downgrade = tier_apply(company=company, tier=tiers["free"], actor=staff_actor)
    removed = [e for e in _changes() if e.data["change"] == "tier_removed"]
    assert sorted(e.data["featureCode"] for e in removed) == downgrade.features_removed
    assert all(e.data["access"]["isEnabled"] is False for e in removed)


def test_window_end_is_notified_once_by_the_job(company, features, staff_actor):
    soon = timezone.now() + timedelta(seconds=1)
    feature_access_set(
        company=company, feature=features["sso"], changes={"is_enabled": True, "valid_until": soon}, actor=staff_actor, reason="trial"
    )
    assert len(_changes()) == 1
    assert access_windows_notify() == 0  # not ended yet
    later = soon + timedelta(minutes=1)
    assert access_windows_notify(now=later) == 1
    assert access_windows_notify(now=later + timedelta(minutes=1)) == 0
    ended = _changes()[-1]
    assert ended.data["change"] == "window_ended" and ended.data["access"]["inForce"] is False
    assert ended.data["featureCode"] == "sso"


def test_window_start_and_a_past_end_set_by_hand(company, features, staff_actor):
    now = timezone.now()
    feature_access_set(
        company=company, feature=features["sso"], changes={"valid_from": now + timedelta(seconds=1)}, actor=staff_actor
    )
    # A row written with its end already past was notified by the write itself.
    feature_access_set(
        company=company, feature=features["api_access"], changes={"valid_until": now - timedelta(hours=1)}, actor=staff_actor
    )
    assert access_windows_notify(now=now + timedelta(minutes=1)) == 1
    assert _changes()[-1].data["change"] == "window_started"
    assert FeatureAccess.objects.count() == 2


def test_run_job_expire_overrides(company, features, staff_actor, capsys):
    call_command("run_job", "expire_overrides")
    assert '"notified": 0' in capsys.readouterr().out
