"""Local profiling only (not committed)."""
import json
import time
import cProfile, pstats, io
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.metering.conftest import *  # noqa

pytestmark = pytest.mark.django_db


def _time(fn, n=300):
    for _ in range(20):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def test_profile(api, company, access, feature):
    access.quantity_limit = None
    access.save()
    body = {"companyId": str(company.id), "featureCode": "ai_credit", "quantity": 1}
    counter = iter(range(10**9))

    def track():
        r = api.post("/api/v1/usage/track", {**body, "idempotencyKey": f"k{next(counter)}"}, format="json")
        assert r.status_code == 200, r.content

    def check():
        r = api.get(f"/api/v1/companies/{company.id}/features/ai_credit")
        assert r.status_code == 200, r.content

    def batch():
        events = [{**body, "idempotencyKey": f"k{next(counter)}"} for _ in range(500)]
        r = api.post("/api/v1/usage/track-batch", {"events": events}, format="json")
        assert r.status_code == 200, r.content

    with CaptureQueriesContext(connection) as q:
        check()
    print("\ncheck queries", len(q), [x["sql"][:150] for x in q.captured_queries])
    with CaptureQueriesContext(connection) as q:
        track()
    print("track queries", len(q), [x["sql"][:100] for x in q.captured_queries])
    print("check us", _time(check))
    print("track us", _time(track))
    print("batch500 us/event", _time(batch, n=10) / 500)
    import os
    if os.environ.get("PROF"):
        pr = cProfile.Profile()
        fn = {"check": check, "track": track, "batch": batch}[os.environ["PROF"]]
        pr.enable()
        for _ in range(5 if os.environ["PROF"] == "batch" else 200):
            fn()
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(45)
        print(s.getvalue())
