""""Access in force" has one home (entitlements.rules): the Python rule and
its database filter agree on every case of the validity window, and every
caller (model, check, usage writes, billing's count) answers the same."""

from datetime import timedelta
from itertools import product as cartesian

import pytest
from django.utils import timezone

from entitlements.models import FeatureAccess
from entitlements.rules import (
    access_in_force,
    access_in_force_layers_q,
    access_in_force_q,
    access_resolve,
    access_window_refusal,
)
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


LAYER_CASES = list(
    cartesian(
        [True, False],  # tier_granted
        [True, False],  # tier layer is_enabled
        [None, True, False],  # override: none / enables / disables
        BOUNDS,
        BOUNDS,
    )
)


def test_every_caller_agrees_with_the_rule_on_every_case():
    """The layers (tier layer, override and its window) resolved by
    `access_resolve` agree with the database filter, the model and the
    usage writes' terms on every case."""
    from billing.selectors import billing_status
    from metering.rules import AccessTerms

    access = FeatureAccessFactory()
    for tier_granted, tier_enabled, override_enables, start, end in LAYER_CASES:
        valid_from, valid_until = BOUNDS[start], BOUNDS[end]
        has_override = override_enables is not None
        FeatureAccess.objects.filter(pk=access.pk).update(
            tier_granted=tier_granted,
            is_enabled=tier_enabled,
            source="trial" if has_override else "subscription",
            overrides={"is_enabled": override_enables} if has_override else {},
            valid_from=valid_from if has_override else None,
            valid_until=valid_until if has_override else None,
        )
        access.refresh_from_db()
        effective = access_resolve(access.as_row(), at=AT)
        expected = effective.granted and effective.is_enabled
        case = (tier_granted, tier_enabled, override_enables, start, end)
        if has_override and access_in_force(is_enabled=True, valid_from=valid_from, valid_until=valid_until, at=AT):
            assert expected == override_enables, case  # the override in force decides
        else:
            assert expected == (tier_granted and tier_enabled), case  # otherwise the tier layer
        assert FeatureAccess.objects.filter(access_in_force_layers_q(AT), pk=access.pk).exists() == expected, case
        assert access.is_active_at(AT) == expected, case
        terms = AccessTerms.from_row(access.pk, access.as_row(), at=AT)
        assert (terms.refusal(AT) is None) == expected, case
    # billing's count of enabled features is the filter, applied now.
    FeatureAccess.objects.filter(pk=access.pk).update(
        tier_granted=True, is_enabled=True, source="subscription", overrides={}, valid_from=None, valid_until=None
    )
    from tests.factories.companies import ProductLinkFactory

    ProductLinkFactory(product=access.feature.product, company=access.company)
    status = billing_status(product_id=access.feature.product_id, company_id=access.company_id)
    assert status.enabled_features_count == 1
