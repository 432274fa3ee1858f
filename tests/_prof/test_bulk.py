import time, uuid
import pytest
from django.db import connection
from django.utils import timezone
from tests.metering.conftest import *  # noqa
from metering.models import UsageMeter, UsageEvent
from metering.services.events import usage_event_build, usage_events_insert
from metering.rules import AccessTerms, FeatureInfo
from metering.periods import period_for

pytestmark = pytest.mark.django_db


def test_bulk(product, company, access, feature):
    now = timezone.now()
    m = UsageMeter.objects.create(company=company, feature=feature, period_start=period_for("monthly", now).start, value=3)
    fi = FeatureInfo(feature.id, feature.code, feature.kind, feature.reset_period, feature.stripe_meter_event_name)
    terms = AccessTerms(access.id, True, None, 0, None, None)
    def build():
        return [usage_event_build(product_id=product.id, company_id=company.id, feature=fi, terms=terms, meter_id=m.id,
            event_type="increment", previous_value=1, new_value=2, event_time=now, now=now, idempotency_key=str(uuid.uuid4())) for _ in range(500)]
    def inst():
        return [UsageEvent(id=uuid.uuid4(), product_id=product.id, company_id=company.id, feature_id=fi.id, meter_id=m.id,
            event_type="increment", quantity=1, previous_value=1, new_value=2, quantity_limit=None, included_quantity=0, billable_delta=1,
            idempotency_key=str(uuid.uuid4()), request_fingerprint="x"*64, event_time=now, created_at=now, source="api", actor_kind="api_key", actor_id="abc", actor_label="chat", metadata={}, stripe_delivery_status="pending", stripe_event_identifier="x") for _ in range(500)]
    for name, fn in [("build", build), ("inst", inst)]:
        t = time.perf_counter(); 
        for _ in range(5): fn()
        print(name, (time.perf_counter()-t)/5/500*1e6)
    for name, fn in [("json", lambda: usage_events_insert(build())), ("bulk", lambda: UsageEvent.objects.bulk_create(inst()))]:
        fn()
        t = time.perf_counter();
        for _ in range(5): fn()
        print(name, (time.perf_counter()-t)/5/500*1e6)
