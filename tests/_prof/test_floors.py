import pytest
from django.test import override_settings
from rest_framework.test import APIClient
from tests.metering.conftest import *  # noqa
from metering.models import UsageMeter, UsageEvent
from metering.periods import period_for
from django.utils import timezone

pytestmark = pytest.mark.django_db


@override_settings(ROOT_URLCONF="bench.urls")
def test_floors(api, product, company, access, feature):
    m = UsageMeter.objects.create(company=company, feature=feature, period_start=period_for("monthly", timezone.now()).start)
    c = APIClient()
    body = {"meterId": str(m.id), "companyId": str(company.id), "productId": str(product.id), "featureId": str(feature.id), "quantity": 1}
    r = c.post("/bench/floor/track", {**body, "idempotencyKey": "a"}, format="json"); assert r.status_code == 200, r.content
    r = c.post("/bench/floor/track-batch", {"events": [{**body, "idempotencyKey": f"b{i}"} for i in range(5)]}, format="json"); assert r.status_code == 200, r.content
    r = c.get(f"/bench/floor/{company.id}"); assert r.status_code == 200, r.content
    r = api.get(f"/bench/floor-auth/{company.id}"); assert r.status_code == 200, r.content
    m.refresh_from_db(); assert m.value == 6 and UsageEvent.objects.count() == 6
    assert sorted(UsageEvent.objects.values_list("new_value", flat=True)) == [1, 2, 3, 4, 5, 6]
