"""feature_access_set and tier_apply (SPEC §4 rules), with their history."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from config.errors import BadRequest, NotFound, PreconditionFailed
from companies.actors import Actor
from entitlements.models import AccessSource, FeatureAccess
from entitlements.selectors import feature_access_check
from entitlements.services import feature_access_set, tier_apply, tier_apply_default
from tests.factories.entitlements import FeatureFactory

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


def access(company, feature):
    return FeatureAccess.objects.get(company=company, feature=feature)


def history(company, feature):
    return list(access(company, feature).history.order_by("history_date", "history_id"))


# --- feature_access_set ----------------------------------------------------------------------------


def test_set_creates_an_enabled_row_with_reason_and_actor(company, features):
    feature_access_set(
        company=company, feature=features["ai_credit"], changes={"quantity_limit": 500}, actor=SYSTEM, reason="Deal #12"
    )
    row = access(company, features["ai_credit"])
    # An override over no tier layer: it enables the feature and sets the limit.
    assert row.overrides == {"is_enabled": True, "quantity_limit": 500} and not row.tier_granted
    effective = row.effective_at(timezone.now())
    assert effective.is_enabled and effective.quantity_limit == 500 and row.source == AccessSource.MANUAL
    assert (row.set_by, row.reason) == ("system:tests", "Deal #12")
    [record] = history(company, features["ai_credit"])
    assert record.history_change_reason == "Deal #12"
    assert record.actor == "system:tests"
    assert record.history_type == "+"


def test_set_records_old_and_new_values(company, features):
    feature = features["ai_credit"]
    feature_access_set(company=company, feature=feature, changes={"quantity_limit": 100}, actor=SYSTEM, reason="a")
    feature_access_set(company=company, feature=feature, changes={"quantity_limit": 250}, actor=SYSTEM, reason="b")
    first, second = history(company, feature)
    delta = second.diff_against(first, included_fields=["overrides"])
    assert [(c.field, c.old["quantity_limit"], c.new["quantity_limit"]) for c in delta.changes] == [("overrides", 100, 250)]
    assert second.history_change_reason == "b"


def test_set_by_staff_user_points_history_at_the_user(company, features):
    user = get_user_model().objects.create_user("alice", is_staff=True)
    feature_access_set(
        company=company, feature=features["sso"], changes={"is_enabled": True}, actor=Actor.for_user(user), reason="x"
    )
    [record] = history(company, features["sso"])
    assert record.history_user == user and record.actor == "user:alice"


def test_set_by_api_key_defaults_source_api(company, features):
    actor = Actor.for_api_key(key_id="3f2c", name="backend")
    feature_access_set(company=company, feature=features["sso"], changes={"is_enabled": True}, actor=actor)
    row = access(company, features["sso"])
    assert row.source == AccessSource.API
    assert row.history.get().actor == "api_key:backend (3f2c)"


def test_config_is_merged_key_by_key_and_null_removes(company, features):
    feature = features["team_seats"]
    feature_access_set(company=company, feature=feature, changes={"config": {"maxSeats": 10, "sso": True}}, actor=SYSTEM)
    feature_access_set(company=company, feature=feature, changes={"config": {"maxSeats": 50, "sso": None}}, actor=SYSTEM)
    assert access(company, feature).overrides["config"] == {"maxSeats": 50}
    check = feature_access_check(company=company, product_id=feature.product_id, feature=feature)
    assert check.config_values == {"maxSeats": 50}


def test_empty_change_on_a_missing_row_creates_nothing(company, features):
    assert feature_access_set(company=company, feature=features["sso"], changes={}, actor=SYSTEM) is None
    assert not FeatureAccess.objects.exists()


def test_no_change_writes_no_history(company, features):
    feature = features["ai_credit"]
    feature_access_set(company=company, feature=feature, changes={"quantity_limit": 5}, actor=SYSTEM, reason="a")
    feature_access_set(company=company, feature=feature, changes={"quantity_limit": 5}, actor=SYSTEM, reason="again")
    assert len(history(company, feature)) == 1


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"quantity_limit": -1}, "quantityLimit"),
        ({"included_quantity": -5}, "includedQuantity"),
        ({"included_quantity": None}, "includedQuantity"),
        ({"quantity_limit": 1.5}, "quantityLimit"),
        ({"source": "gift"}, "source"),
        ({"config": ["not", "an", "object"]}, "config"),
        ({"is_enabled": "yes"}, "isEnabled"),
        ({"valid_until": "tomorrow"}, "validUntil"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_changes_are_refused_and_nothing_is_written(company, features, changes, field):
    with pytest.raises(BadRequest) as error:
        feature_access_set(company=company, feature=features["ai_credit"], changes=changes, actor=SYSTEM)
    assert field in error.value.details["fields"]
    assert not FeatureAccess.objects.exists()


def test_hand_edit_of_a_subscription_row_makes_it_manual(company, features, tiers):
    tier_apply(company=company, tier=tiers["free"], actor=SYSTEM)
    feature_access_set(company=company, feature=features["ai_credit"], changes={"quantity_limit": 900}, actor=SYSTEM)
    assert access(company, features["ai_credit"]).source == AccessSource.MANUAL


# --- tier_apply -----------------------------------------------------------------------------------


def codes(rows):
    return sorted(rows)


def test_apply_sets_every_tier_feature_as_subscription(company, features, tiers):
    result = tier_apply(company=company, tier=tiers["pro"], actor=SYSTEM, reason="Upgrade")
    assert result.tier_code == "pro"
    assert codes(result.features_applied) == ["ai_credit", "ai_image", "api_access", "messages", "sso", "team_seats"]
    assert result.features_removed == [] and result.changed
    ai = access(company, features["ai_credit"])
    assert (ai.source, ai.tier, ai.included_quantity, ai.quantity_limit) == ("subscription", tiers["pro"], 1000, None)
    assert access(company, features["team_seats"]).config == {"maxSeats": 50}
    assert ai.history.get().history_change_reason == "Upgrade"


def test_overrides_go_on_top(company, features, tiers):
    tier_apply(
        company=company,
        tier=tiers["pro"],
        overrides={"ai_credit": {"quantity_limit": 5000, "included_quantity": 2000}, "team_seats": {"config": {"maxSeats": 80}}},
        actor=SYSTEM,
    )
    ai = access(company, features["ai_credit"])
    assert (ai.quantity_limit, ai.included_quantity) == (5000, 2000)
    assert access(company, features["team_seats"]).config == {"maxSeats": 80}


def test_override_errors(company, tiers, other_product):
    FeatureFactory(product=tiers["free"].product, code="not_in_free")
    with pytest.raises(NotFound):
        tier_apply(company=company, tier=tiers["free"], overrides={"nope": {}}, actor=SYSTEM)
    with pytest.raises(BadRequest):
        tier_apply(company=company, tier=tiers["free"], overrides={"sso": {}}, actor=SYSTEM)  # free lacks sso
    with pytest.raises(BadRequest) as error:
        tier_apply(company=company, tier=tiers["free"], overrides={"ai_credit": {"quantity_limit": -3}}, actor=SYSTEM)
    assert "features.ai_credit.quantityLimit" in error.value.details["fields"]
    assert not FeatureAccess.objects.exists()


def test_changing_tier_disables_what_the_new_tier_lacks(company, features, tiers):
    tier_apply(company=company, tier=tiers["enterprise"], actor=SYSTEM)
    result = tier_apply(company=company, tier=tiers["starter"], actor=SYSTEM, reason="Downgrade")
    assert result.features_removed == ["priority_support", "sso"]
    for code in ("sso", "priority_support"):
        row = access(company, features[code])
        assert not row.is_enabled and row.source == "subscription"
        assert row.history.latest().history_change_reason == "Downgrade"
    assert access(company, features["api_access"]).is_enabled


def test_hand_set_rows_survive_a_tier_change(company, features, tiers):
    tier_apply(company=company, tier=tiers["enterprise"], actor=SYSTEM)
    for code, source in (("sso", "manual"), ("priority_support", "trial"), ("api_access", "api")):
        feature_access_set(
            company=company, feature=features[code], changes={"source": source, "is_enabled": True}, actor=SYSTEM
        )
    result = tier_apply(company=company, tier=tiers["free"], actor=SYSTEM)
    # The tier layer of everything free lacks goes; the overrides stay in
    # force over it and are reported as kept.
    assert codes(result.features_removed) == ["ai_image", "api_access", "priority_support", "sso"]
    assert [(kept["featureCode"], kept["source"]) for kept in result.features_kept] == [
        ("api_access", "api"),
        ("priority_support", "trial"),
        ("sso", "manual"),
    ]
    for code in ("sso", "priority_support", "api_access"):
        assert access(company, features[code]).is_active_at(timezone.now())


def test_manual_row_of_a_tier_feature_is_kept_unless_overridden(company, features, tiers):
    feature_access_set(company=company, feature=features["ai_credit"], changes={"quantity_limit": 7777}, actor=SYSTEM)
    result = tier_apply(company=company, tier=tiers["pro"], actor=SYSTEM)
    assert result.features_kept == [{"featureCode": "ai_credit", "source": "manual", "validUntil": None}]
    assert "ai_credit" in result.features_applied  # the tier layer is written under the override
    assert access(company, features["ai_credit"]).effective_at(timezone.now()).quantity_limit == 7777
    tier_apply(company=company, tier=tiers["pro"], overrides={"ai_credit": {"quantity_limit": 10}}, actor=SYSTEM)
    row = access(company, features["ai_credit"])
    # The call's per-company value is the tier layer; the override still wins.
    assert (row.quantity_limit, row.source) == (10, "manual")
    assert row.effective_at(timezone.now()).quantity_limit == 7777


def test_a_trial_survives_a_tier_change_and_then_falls_back_to_the_tier(company, features, tiers):
    until = timezone.now() + timedelta(days=14)
    feature_access_set(
        company=company,
        feature=features["sso"],
        changes={"source": "trial", "valid_until": until, "is_enabled": False},
        actor=SYSTEM,
    )
    result = tier_apply(company=company, tier=tiers["pro"], actor=SYSTEM)
    assert "sso" in result.features_applied
    assert result.features_kept == [{"featureCode": "sso", "source": "trial", "validUntil": until}]
    row = access(company, features["sso"])
    assert (row.source, row.valid_until) == ("trial", until)
    assert not row.is_active_at(timezone.now())  # the trial (off) is in force
    assert row.is_active_at(until)  # then the tier layer (pro grants sso)


def test_applying_the_same_tier_twice_changes_nothing(company, features, tiers):
    tier_apply(company=company, tier=tiers["free"], actor=SYSTEM)
    tier_apply(company=company, tier=tiers["pro"], actor=SYSTEM)
    before = {(h.id, h.history_id) for h in FeatureAccess.history.all()}
    rows_before = list(FeatureAccess.objects.order_by("pk").values())
    result = tier_apply(company=company, tier=tiers["pro"], actor=SYSTEM, reason="again")
    assert not result.changed and result.features_removed == []
    assert {(h.id, h.history_id) for h in FeatureAccess.history.all()} == before
    assert list(FeatureAccess.objects.order_by("pk").values()) == rows_before


def test_inactive_tier_is_refused(company, tiers):
    tiers["starter"].is_active = False
    tiers["starter"].save()
    with pytest.raises(PreconditionFailed):
        tier_apply(company=company, tier=tiers["starter"], actor=SYSTEM)
    assert not FeatureAccess.objects.exists()
    # Re-applying a grandfathered subscription is allowed explicitly.
    assert tier_apply(company=company, tier=tiers["starter"], actor=SYSTEM, allow_inactive=True).changed


def test_default_tier(company, tiers, catalog):
    result = tier_apply_default(company=company, product_id=catalog.pk, actor=SYSTEM)
    assert result.tier_code == "free"
