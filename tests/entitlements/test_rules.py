""""Access in force" has one home (entitlements.rules): the Python rule and
its database filter agree on every case of the validity window, and every
caller (model, check, usage writes, billing's count) answers the same."""

from datetime import timedelta
from itertools import product as cartesian

import pytest
from django.utils import timezone

from entitlements.models import FeatureAccess
from entitlements.rules import access_in_force, access_in_force_q, access_window_refusal
from tests.factories.entitlements import FeatureAccessFactory

pytestmark = pytest.mark.django_db

AT = timezone.now().replace(microsecond=0)
BOUNDS = {"open": None, "before": AT - timedelta(hours=1), "exactly": AT, "after": AT + timedelta(hours=1)}
CASES = list(cartesian([True, False], BOUNDS, BOUNDS))


def test_in_force_means_enabled_inside_a_half_open_window():
    assert access_in_force(is_enabled=True, valid_from=None, valid_until=None, at=AT)
    assert access_in_force(is_enabled=True, valid_from=AT, valid_until=None, at=AT)  # starts inclusive
    assert not access_in_force(is_enabled=True, valid_from=None, valid_until=AT, at=AT)  # ends exclusive
    assert access_window_refusal(is_enabled=False, valid_from=None, valid_until=None, at=AT) == "disabled"
    assert access_window_refusal(is_enabled=True, valid_from=BOUNDS["after"], valid_until=None, at=AT) == "not_yet_valid"
    assert access_window_refusal(is_enabled=True, valid_from=None, valid_until=BOUNDS["before"], at=AT) == "expired"


def test_every_caller_agrees_with_the_rule_on_every_case():
    from billing.selectors import billing_status
    from metering.rules import AccessTerms

    access = FeatureAccessFactory()
    for is_enabled, start, end in CASES:
        valid_from, valid_until = BOUNDS[start], BOUNDS[end]
        FeatureAccess.objects.filter(pk=access.pk).update(
            is_enabled=is_enabled, valid_from=valid_from, valid_until=valid_until
        )
        access.refresh_from_db()
        expected = access_in_force(is_enabled=is_enabled, valid_from=valid_from, valid_until=valid_until, at=AT)
        case = (is_enabled, start, end)
        assert FeatureAccess.objects.filter(access_in_force_q(AT), pk=access.pk).exists() == expected, case
        assert access.is_active_at(AT) == expected, case
        terms = AccessTerms(access.pk, is_enabled, None, 0, valid_from, valid_until)
        assert (terms.refusal(AT) is None) == expected, case
    # billing's count of enabled features is the filter, applied now.
    FeatureAccess.objects.filter(pk=access.pk).update(is_enabled=True, valid_from=None, valid_until=None)
    from tests.factories.companies import ProductLinkFactory

    ProductLinkFactory(product=access.feature.product, company=access.company)
    status = billing_status(product_id=access.feature.product_id, company_id=access.company_id)
    assert status.enabled_features_count == 1
