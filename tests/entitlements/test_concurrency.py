"""Concurrent writers on PostgreSQL (real threads, real row locks)."""

import threading

import pytest
from django.db import close_old_connections, connection

from companies.actors import Actor
from entitlements.models import FeatureAccess
from entitlements.services import feature_access_set, tier_apply

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8


def run_in_threads(functions):
    barrier = threading.Barrier(len(functions))
    errors: list[BaseException] = []

    def runner(function):
        try:
            barrier.wait(timeout=10)
            function()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=runner, args=(function,)) for function in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def test_concurrent_config_merges_lose_nothing(company, features):
    feature = features["team_seats"]

    def merge(index):
        return lambda: feature_access_set(
            company=company,
            feature=feature,
            changes={"config": {f"key{index}": index}},
            actor=Actor.system(f"worker{index}"),
            reason=f"merge {index}",
        )

    # The row does not exist yet: the first writers also race to create it.
    run_in_threads([merge(index) for index in range(THREADS)])
    row = FeatureAccess.objects.get(company=company, feature=feature)
    assert row.overrides["config"] == {f"key{index}": index for index in range(THREADS)}
    assert row.history.count() == THREADS


def test_concurrent_tier_applies_leave_one_consistent_tier(company, features, tiers):
    order = ["pro", "starter", "enterprise", "free"] * 2

    def apply(code):
        return lambda: tier_apply(company=company, tier=tiers[code], actor=Actor.system("race"), reason=code)

    run_in_threads([apply(code) for code in order])
    enabled = FeatureAccess.objects.filter(company=company, source="subscription", is_enabled=True)
    tier_ids = set(enabled.values_list("tier_id", flat=True))
    assert len(tier_ids) == 1, "every enabled subscription row comes from the same tier"
    winner = next(t for t in tiers.values() if t.pk in tier_ids)
    granted = {tf.feature.code for tf in winner.tier_features.select_related("feature") if tf.is_enabled}
    assert set(enabled.values_list("feature__code", flat=True)) == granted
    # Nothing is left half-applied: applying the winner again changes nothing.
    assert not tier_apply(company=company, tier=winner, actor=Actor.system("check")).changed


def test_the_same_tier_applied_concurrently_writes_once(company, features, tiers):
    run_in_threads(
        [lambda: tier_apply(company=company, tier=tiers["pro"], actor=Actor.system("race")) for _ in range(THREADS)]
    )
    for row in FeatureAccess.objects.filter(company=company):
        assert row.history.count() == 1


def test_tier_apply_and_hand_edits_interleave_safely(company, features, tiers):
    tier_apply(company=company, tier=tiers["free"], actor=Actor.system("setup"))

    def bump(index):
        return lambda: feature_access_set(
            company=company,
            feature=features["team_seats"],
            changes={"config": {f"seat_note_{index}": True}},
            actor=Actor.system("support"),
            reason="note",
        )

    functions = [bump(index) for index in range(4)] + [
        (lambda code=code: tier_apply(company=company, tier=tiers[code], actor=Actor.system("race")))
        for code in ("pro", "enterprise", "pro", "starter")
    ]
    run_in_threads(functions)
    seats = FeatureAccess.objects.get(company=company, feature=features["team_seats"])
    # Every hand edit happened (history) and nothing raised; the final row is
    # either the hand-edited one or a tier's grant applied after it.
    assert seats.history.filter(history_change_reason="note").count() == 4
