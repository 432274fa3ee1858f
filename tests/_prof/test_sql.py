import time
import pytest
from django.db import connection
from django.utils import timezone
from psycopg import Cursor
from tests.metering.conftest import *  # noqa
from metering.models import UsageMeter
from metering.selectors import current_usage_read
from metering.periods import period_for

pytestmark = pytest.mark.django_db


def _time(fn, n=500):
    for _ in range(20):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def test_sql(company, access, feature):
    now = timezone.now()
    start = period_for("monthly", now).start
    UsageMeter.objects.create(company=company, feature=feature, period_start=start, value=3)
    sql = "SELECT value FROM metering_usagemeter WHERE company_id = %s AND feature_id = %s AND period_start = %s"
    def orm():
        return current_usage_read(company_id=company.id, features=[feature], at=now)
    def dj():
        with connection.cursor() as c:
            c.execute(sql, [company.id, feature.id, start])
            return c.fetchone()
    def raw():
        raw_conn = connection.connection
        with Cursor(raw_conn) as c:
            c.execute(sql, [company.id, feature.id, start], prepare=True)
            return c.fetchone()
    def trivial():
        with connection.cursor() as c:
            c.execute("SELECT 1")
            return c.fetchone()
    print()
    for name, fn in [("orm", orm), ("dj", dj), ("raw", raw), ("trivial", trivial)]:
        print(name, fn(), _time(fn))
