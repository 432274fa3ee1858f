import time, uuid
import pytest
from metering.api.serializers import UsageTrackSerializer
from metering.api.views import _plain_track_item

def test_ser():
    item = {"companyId": str(uuid.uuid4()), "featureCode": "ai_credit", "quantity": 1, "idempotencyKey": "abc-123"}
    s = UsageTrackSerializer()
    for name, fn in [("drf", lambda: s.run_validation(item)), ("fast", lambda: _plain_track_item(item))]:
        fn()
        t = time.perf_counter()
        for _ in range(2000): fn()
        print(name, (time.perf_counter()-t)/2000*1e6)
