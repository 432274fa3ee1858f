"""The check result of SPEC §4."""

from datetime import timedelta

import pytest
from django.utils import timezone

from config.errors import NotFound
from entitlements.models import AccessSource
from entitlements.selectors import feature_access_check, tier_stripe_price_ids
from tests.factories.entitlements import FeatureAccessFactory

pytestmark = pytest.mark.django_db


_USAGE: dict[str, int] = {}


@pytest.fixture
def usage_of():
    """Usage the caller passes to the check, by feature code (SPEC §1 (a):
    entitlements' decision takes usage as an argument)."""
    _USAGE.clear()
    yield _USAGE
    _USAGE.clear()


def check(company, product, code):
    return feature_access_check(company=company, product_id=product.pk, feature_code=code, usage=_USAGE.get(code, 0))


def test_missing_row_reads_as_disabled(company, catalog):
    result = check(company, catalog, "sso")
    assert (result.is_enabled, result.can_use, result.source, result.tier_code) == (False, False, None, None)
    assert result.feature_name == "Single sign-on"
    metered = check(company, catalog, "ai_credit")
    assert metered.has_quantity and metered.remaining == 0 and not metered.can_use


def test_boolean_feature_enabled(company, catalog, features):
    FeatureAccessFactory(company=company, feature=features["sso"], is_enabled=True, source=AccessSource.MANUAL)
    result = check(company, catalog, "sso")
    assert result.is_enabled and result.can_use and not result.has_quantity
    assert result.remaining is None and result.current_usage == 0
    assert result.source == AccessSource.MANUAL


def test_expired_access_counts_as_disabled(company, catalog, features):
    FeatureAccessFactory(
        company=company, feature=features["sso"], valid_until=timezone.now() - timedelta(seconds=1)
    )
    result = check(company, catalog, "sso")
    # An expired override over no tier layer: nothing grants the feature
    # (the override's end is in the explanation, not in the check).
    assert not result.is_enabled and not result.can_use
    assert result.status == "not_granted" and result.valid_until is None


def test_not_yet_valid_access_counts_as_disabled(company, catalog, features):
    FeatureAccessFactory(company=company, feature=features["sso"], valid_from=timezone.now() + timedelta(days=1))
    assert not check(company, catalog, "sso").can_use


def test_future_valid_until_is_enabled(company, catalog, features):
    FeatureAccessFactory(company=company, feature=features["sso"], valid_until=timezone.now() + timedelta(days=3))
    assert check(company, catalog, "sso").can_use


def test_metered_limit_and_remaining(company, catalog, features, usage_of):
    FeatureAccessFactory(company=company, feature=features["ai_credit"], quantity_limit=100, included_quantity=50)
    usage_of["ai_credit"] = 60
    result = check(company, catalog, "ai_credit")
    assert (result.current_usage, result.quantity_limit, result.included_quantity, result.remaining) == (60, 100, 50, 40)
    assert result.can_use
    usage_of["ai_credit"] = 100
    at_limit = check(company, catalog, "ai_credit")
    assert at_limit.is_enabled and not at_limit.can_use and at_limit.remaining == 0
    usage_of["ai_credit"] = 150  # a staff correction may exceed the limit
    assert check(company, catalog, "ai_credit").remaining == 0


def test_metered_unlimited_has_null_remaining(company, catalog, features, usage_of):
    FeatureAccessFactory(company=company, feature=features["ai_credit"], quantity_limit=None)
    usage_of["ai_credit"] = 10_000
    result = check(company, catalog, "ai_credit")
    assert result.can_use and result.remaining is None and result.quantity_limit is None


def test_usage_reads_as_zero_without_reader(company, catalog, features):
    FeatureAccessFactory(company=company, feature=features["ai_credit"], quantity_limit=5)
    assert check(company, catalog, "ai_credit").current_usage == 0


def test_config_values_merge_default_config(company, catalog, features):
    FeatureAccessFactory(company=company, feature=features["team_seats"], config={"sharedInboxes": True})
    assert check(company, catalog, "team_seats").config_values == {"maxSeats": 3, "sharedInboxes": True}
    # No row: the defaults still show.
    assert check(company, catalog, "team_seats").kind == "config"


def test_unknown_feature_and_other_products_feature_are_not_found(company, catalog, other_product):
    from tests.factories.entitlements import FeatureFactory

    FeatureFactory(product=other_product, code="crm_only")
    with pytest.raises(NotFound):
        check(company, catalog, "nope")
    with pytest.raises(NotFound):
        check(company, catalog, "crm_only")


def test_checks_for_company_lists_every_feature_in_few_queries(
    company, catalog, features, django_assert_max_num_queries
):
    FeatureAccessFactory(company=company, feature=features["sso"])
    feature_access_check(company=company, product_id=catalog.pk, feature_code="sso")  # warm the catalog
    # One for the access rows, at most one for the usage of the metered
    # features, one for the wallet (the demo catalog has a credit-priced feature).
    from metering.selectors import feature_checks

    with django_assert_max_num_queries(3):
        checks = feature_checks(company_id=company.pk, product_id=catalog.pk)
    assert [c.feature_code for c in checks] == sorted(features)
    assert {c.feature_code for c in checks if c.is_enabled} == {"sso"}


def test_stripe_price_ids_base_first(tiers):
    assert tier_stripe_price_ids(tier=tiers["pro"]) == ["price_chat_pro_base", "price_chat_ai_credit", "price_chat_messages"]
    assert tier_stripe_price_ids(tier=tiers["free"]) == []
