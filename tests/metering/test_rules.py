"""Each usage rule has one home (metering.rules): what is billable, and
whether an event goes to Stripe. The SQL the single track runs is generated
from the same module; these tests run the Python and the SQL over every case
and check they agree, and that a tracked event stores what the rules say."""

from itertools import product as cartesian

import pytest
from django.db import connection

from metering.models import StripeDeliveryStatus, UsageEvent
from metering.rules import (
    FeatureInfo,
    billable,
    billable_delta,
    billable_delta_sql,
    goes_to_stripe,
    stripe_status_for,
    stripe_status_sql,
)
from metering.services import usage_track
from tests.factories.entitlements import FeatureAccessFactory, MeteredFeatureFactory

VALUES = [0, 1, 9, 10, 11, 25]
INCLUDED = [0, 10]
CASES = [(p, n, i, m) for p, n, i, m in cartesian(VALUES, VALUES, INCLUDED, [True, False])]


def test_billable_is_usage_beyond_the_included_quantity():
    assert [billable(value, 10) for value in (0, 10, 11, 25)] == [0, 0, 1, 15]
    assert billable_delta(5, 25, 10) == 15 and billable_delta(25, 5, 10) == -15 and billable_delta(3, 8, 10) == 0
    assert goes_to_stripe(stripe_meter_event_name="ai", billable_delta=-2)
    assert not goes_to_stripe(stripe_meter_event_name="ai", billable_delta=0)
    assert not goes_to_stripe(stripe_meter_event_name="", billable_delta=3)


@pytest.mark.postgres
@pytest.mark.django_db
def test_generated_sql_agrees_with_the_rules_on_every_case():
    rows = ", ".join(["(%s::bigint, %s::bigint, %s::bigint, %s::boolean)"] * len(CASES))
    delta = billable_delta_sql("c.previous", "c.new", "c.included")
    sql = (
        f"SELECT c.previous, c.new, c.included, c.meter, {delta}, {stripe_status_sql('c.meter', delta)} "
        f"FROM (VALUES {rows}) AS c(previous, new, included, meter)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for case in CASES for value in case])
        answers = cursor.fetchall()
    assert len(answers) == len(CASES)
    for previous, new, included, meter, sql_delta, sql_status in answers:
        feature = FeatureInfo(None, "f", "metered", "monthly", "meter" if meter else "")
        expected_delta = billable_delta(previous, new, included)
        assert (sql_delta, sql_status) == (expected_delta, stripe_status_for(feature, expected_delta))


@pytest.mark.django_db
@pytest.mark.parametrize("meter_event", ["ai_credit", ""])
def test_tracked_events_store_what_the_rules_say(product, meter_event):
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    company = CompanyFactory()
    ProductLinkFactory(product=product, company=company)
    feature = MeteredFeatureFactory(product=product, code="calls", stripe_meter_event_name=meter_event)
    FeatureAccessFactory(company=company, feature=feature, included_quantity=10, quantity_limit=None)
    for quantity in (4, 5, 1, 7):  # 0→4→9→10→17: inside, inside, reaching, passing the included 10
        usage_track(product_id=product.id, company_id=company.id, feature_code="calls", quantity=quantity)
    info = FeatureInfo(feature.id, feature.code, feature.kind, feature.reset_period, meter_event)
    events = UsageEvent.objects.order_by("new_value")
    assert [e.billable_delta for e in events] == [0, 0, 0, 7]
    for event in events:
        assert event.billable_delta == billable_delta(event.previous_value, event.new_value, 10)
        assert event.stripe_delivery_status == stripe_status_for(info, event.billable_delta)
        assert event.billable_quantity == billable(event.new_value, 10)
    expected_last = StripeDeliveryStatus.PENDING if meter_event else StripeDeliveryStatus.NOT_APPLICABLE
    assert events.last().stripe_delivery_status == expected_last
