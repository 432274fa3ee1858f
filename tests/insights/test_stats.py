"""GET /usage/stats (SPEC §8): per day, ISO week or month, from the rollups
only — one indexed query for a year of days, whatever the raw events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from insights.selectors import usage_stats
from metering.models import UsageDailyRollup
from metering.services import usage_track
from tests.factories.companies import CompanyFactory, ProductLinkFactory

URL = "/api/v1/usage/stats"


def _rollup(company, feature, day, quantity, billable=0, events=1):
    UsageDailyRollup.objects.create(
        company=company, feature=feature, day=day, quantity=quantity, billable_quantity=billable, events=events
    )


@pytest.fixture
def january(company, features):
    limited, unlimited = features
    # Thu 2026-01-01 … ; ISO week of Mon 2025-12-29 holds Jan 1–4.
    _rollup(company, limited, date(2025, 12, 31), 100, 100, 10)  # before `from`
    _rollup(company, limited, date(2026, 1, 1), 3, 1, 2)
    _rollup(company, limited, date(2026, 1, 4), 4, 4, 1)
    _rollup(company, limited, date(2026, 1, 5), 5, 5, 5)
    _rollup(company, unlimited, date(2026, 1, 5), 7, 7, 7)
    _rollup(company, limited, date(2026, 2, 1), 6, 6, 6)
    _rollup(company, limited, date(2026, 3, 1), 1000, 0, 1)  # `to` is exclusive
    return features


@pytest.mark.django_db
def test_daily_stats_oldest_first_with_from_inclusive_and_to_exclusive(api, company, january):
    response = api.get(URL, {"companyId": str(company.id), "from": "2026-01-01", "to": "2026-03-01"})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["hasMore"] is False and body["nextCursor"] is None
    assert body["data"] == [
        {"periodStart": "2026-01-01T00:00:00Z", "featureCode": "ai_credit", "quantity": 3, "billableQuantity": 1, "events": 2},
        {"periodStart": "2026-01-04T00:00:00Z", "featureCode": "ai_credit", "quantity": 4, "billableQuantity": 4, "events": 1},
        {"periodStart": "2026-01-05T00:00:00Z", "featureCode": "ai_credit", "quantity": 5, "billableQuantity": 5, "events": 5},
        {"periodStart": "2026-01-05T00:00:00Z", "featureCode": "messages", "quantity": 7, "billableQuantity": 7, "events": 7},
        {"periodStart": "2026-02-01T00:00:00Z", "featureCode": "ai_credit", "quantity": 6, "billableQuantity": 6, "events": 6},
    ]


@pytest.mark.django_db
def test_weekly_stats_use_iso_weeks_and_monthly_calendar_months(api, company, january):
    weekly = api.get(URL, {"companyId": str(company.id), "featureCode": "ai_credit", "from": "2026-01-01",
                           "to": "2026-03-01", "groupBy": "week"}).json()["data"]
    assert [(row["periodStart"][:10], row["quantity"], row["events"]) for row in weekly] == [
        ("2025-12-29", 7, 3),  # Mon of Jan 1's ISO week; only days inside [from, to)
        ("2026-01-05", 5, 5),
        ("2026-01-26", 6, 6),
    ]
    monthly = api.get(URL, {"companyId": str(company.id), "from": "2025-12-01", "to": "2026-04-01",
                            "groupBy": "month"}).json()["data"]
    assert [(row["periodStart"][:10], row["featureCode"], row["quantity"]) for row in monthly] == [
        ("2025-12-01", "ai_credit", 100),
        ("2026-01-01", "ai_credit", 12),
        ("2026-01-01", "messages", 7),
        ("2026-02-01", "ai_credit", 6),
        ("2026-03-01", "ai_credit", 1000),
    ]


@pytest.mark.django_db
def test_pages_follow_each_other_without_gaps(api, company, january):
    seen, cursor = [], None
    for _ in range(10):
        query = {"companyId": str(company.id), "from": "2025-01-01", "to": "2027-01-01", "limit": 2}
        if cursor:
            query["cursor"] = cursor
        body = api.get(URL, query).json()
        seen += [(row["periodStart"], row["featureCode"]) for row in body["data"]]
        cursor = body["nextCursor"]
        if not body["hasMore"]:
            break
    assert len(seen) == 7 and seen == sorted(seen) and len(set(seen)) == 7


@pytest.mark.django_db
def test_stats_are_built_by_tracks(api, product, company, features):
    usage_track(product_id=product.id, company_id=company.id, feature_code="messages", quantity=4)
    usage_track(product_id=product.id, company_id=company.id, feature_code="messages", quantity=2)
    today = datetime.now(UTC).date()
    body = api.get(URL, {"companyId": str(company.id), "from": today.isoformat(),
                         "to": (today + timedelta(days=1)).isoformat()}).json()
    assert [(r["featureCode"], r["quantity"], r["events"]) for r in body["data"]] == [("messages", 6, 2)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, field",
    [
        ({"from": "2026-01-01", "to": "2026-02-01"}, "companyId"),
        ({"companyId": "x", "from": "2026-01-01", "to": "2026-02-01"}, "companyId"),
        ({"companyId": "C", "to": "2026-02-01"}, "from"),
        ({"companyId": "C", "from": "2026-13-01", "to": "2026-02-01"}, "from"),
        ({"companyId": "C", "from": "2026-02-01", "to": "2026-01-01"}, "to"),
        ({"companyId": "C", "from": "2000-02-01", "to": "2026-01-01"}, "to"),
        ({"companyId": "C", "from": "2026-01-01", "to": "2026-02-01", "groupBy": "year"}, "groupBy"),
        ({"companyId": "C", "from": "2026-01-01", "to": "2026-02-01", "limit": "1001"}, "limit"),
        ({"companyId": "C", "from": "2026-01-01", "to": "2026-02-01", "cursor": "garbage"}, "cursor"),
        ({"companyId": "C", "from": "2026-01-01", "to": "2026-02-01", "bogus": "1"}, "bogus"),
    ],
)
def test_bad_queries_are_400_with_field_messages(api, company, query, field):
    query = {k: (str(company.id) if v == "C" else v) for k, v in query.items()}
    response = api.get(URL, query)
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["details"]["fields"]


@pytest.mark.django_db
def test_another_products_company_is_404_and_its_usage_never_shows(api, other_api, other_product, company, january):
    assert other_api.get(URL, {"companyId": str(company.id), "from": "2026-01-01", "to": "2026-02-01"}).status_code == 404
    # A company shared by both products: the other key sees none of this product's features.
    ProductLinkFactory(product=other_product, company=company, external_org_id="org_acme_crm")
    body = other_api.get(URL, {"companyId": str(company.id), "from": "2026-01-01", "to": "2026-02-01"}).json()
    assert body["data"] == []
    assert api.get(URL, {"companyId": str(CompanyFactory().id), "from": "2026-01-01", "to": "2026-02-01"}).status_code == 404


@pytest.mark.django_db
def test_a_year_of_daily_stats_is_one_query(product, company, features):
    limited, unlimited = features
    first = date(2025, 1, 1)
    UsageDailyRollup.objects.bulk_create(
        UsageDailyRollup(company=company, feature=feature, day=first + timedelta(days=n), quantity=n, events=n)
        for n in range(365)
        for feature in features
    )
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)

    with CaptureQueriesContext(connection) as queries:
        page = usage_stats(product_id=product.id, company_id=company.id, start=start, end=end, feature_code="ai_credit")

    assert len(queries.captured_queries) == 1
    assert len(page.items) == 365 and not page.has_more
    assert sum(item.quantity for item in page.items) == sum(range(365))


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_stats_query_is_an_index_range_scan(product, company, features):
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    with CaptureQueriesContext(connection) as queries:
        usage_stats(product_id=product.id, company_id=company.id, start=start, end=end, feature_code="ai_credit")
    sql = queries.captured_queries[0]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "usage_rollup_unique_day" in plan, plan
