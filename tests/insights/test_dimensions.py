"""Dimensions and hourly totals (SPEC §5, §8): per-value and per-hour rollups
equal the events they summarise after any sequence of usage writes, under
threads, across the compaction job (35-day hours, the top-100 fold) and a
merge; `GET /usage/stats?groupBy=hour&dimension=` and its 400s; the catalog's
limit of three dimensions."""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import ApplicationError
from entitlements.catalog import CatalogError, catalog_validate
from insights.selectors import usage_stats
from metering.models import UsageDimensionRollup, UsageEvent, UsageHourlyRollup
from metering.rules import OTHER_VALUE, dimension_value
from metering.services import (
    TrackRequest,
    rollups_compact,
    rollups_merge,
    rollups_rebuild,
    usage_adjust,
    usage_set,
    usage_track,
    usage_track_batch,
)
from tests.factories.companies import CompanyFactory, ProductLinkFactory
from tests.factories.entitlements import FeatureAccessFactory, MeteredFeatureFactory

from .conftest import events_summary, rollups_summary

URL = "/api/v1/usage/stats"
DIMENSIONS = ("model", "platform", "region")


@pytest.fixture
def tokens(product, company):
    """A metered feature with three dimensions, unlimited."""
    feature = MeteredFeatureFactory(product=product, code="tokens", reset_period="monthly", dimensions=list(DIMENSIONS))
    FeatureAccessFactory(company=company, feature=feature, quantity_limit=None, included_quantity=10)
    return feature


def hourly_events_summary() -> dict:
    totals: dict = defaultdict(lambda: [0, 0, 0])
    for company_id, feature_id, event_time, quantity, billable in UsageEvent.objects.values_list(
        "company_id", "feature_id", "event_time", "quantity", "billable_delta"
    ):
        total = totals[(company_id, feature_id, event_time.astimezone(UTC).replace(minute=0, second=0, microsecond=0))]
        total[0] += quantity
        total[1] += billable
        total[2] += 1
    return {key: tuple(value) for key, value in totals.items()}


def hourly_summary() -> dict:
    return {
        (c, f, hour): (q, b, n)
        for c, f, hour, q, b, n in UsageHourlyRollup.objects.values_list(
            "company_id", "feature_id", "hour", "quantity", "billable_quantity", "events"
        )
    }


def dimension_events_summary(*, by_day: bool = False) -> dict:
    """(company, feature, dimension, hour or day, value) → totals, from the raw events."""
    dimensions = {}
    totals: dict = defaultdict(lambda: [0, 0, 0])
    for company_id, feature_id, dims, event_time, quantity, billable, metadata in UsageEvent.objects.values_list(
        "company_id", "feature_id", "feature__dimensions", "event_time", "quantity", "billable_delta", "metadata"
    ):
        dimensions[feature_id] = dims
        moment = event_time.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if by_day:
            moment = moment.replace(hour=0)
        for key in dims or ():
            total = totals[(company_id, feature_id, key, moment, dimension_value(metadata, key))]
            total[0] += quantity
            total[1] += billable
            total[2] += 1
    return {key: tuple(value) for key, value in totals.items()}


def dimension_summary(*, by_day: bool = False) -> dict:
    totals: dict = defaultdict(lambda: [0, 0, 0])
    for c, f, dimension, start, value, q, b, n in UsageDimensionRollup.objects.values_list(
        "company_id", "feature_id", "dimension", "period_start", "value", "quantity", "billable_quantity", "events"
    ):
        start = start.astimezone(UTC)
        total = totals[(c, f, dimension, start.replace(hour=0) if by_day else start, value)]
        total[0] += q
        total[1] += b
        total[2] += n
    return {key: tuple(value) for key, value in totals.items() if any(value)}


def per_dimension_day(summary: dict) -> dict:
    """Σ over values: (company, feature, dimension, day) → totals."""
    totals: dict = defaultdict(lambda: [0, 0, 0])
    for (c, f, dimension, moment, _value), (q, b, n) in summary.items():
        total = totals[(c, f, dimension, moment.date())]
        total[0] += q
        total[1] += b
        total[2] += n
    return {key: tuple(value) for key, value in totals.items()}


def assert_exact() -> None:
    assert rollups_summary() == events_summary()
    assert hourly_summary() == hourly_events_summary()
    assert dimension_summary() == dimension_events_summary()


# --- Property test: any sequence of writes -------------------------------------------------

BACKDATE = st.integers(min_value=0, max_value=35 * 24 * 60 - 10)
METADATA = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["gpt-4", "claude", "other", 7, None]),
        "platform": st.sampled_from(["web", "ios"]),
        "region": st.sampled_from(["eu", "us"]),
    },
)
CODES = ("ai_credit", "tokens")
track_op = st.tuples(st.just("track"), st.sampled_from(CODES), st.integers(1, 20), BACKDATE, METADATA)
batch_op = st.tuples(
    st.just("batch"),
    st.lists(st.tuples(st.sampled_from(CODES), st.integers(1, 15), BACKDATE, METADATA), min_size=1, max_size=8),
)
set_op = st.tuples(st.just("set"), st.sampled_from(CODES), st.integers(0, 80), METADATA)
adjust_op = st.tuples(st.just("adjust"), st.sampled_from(CODES), st.integers(-30, 30).filter(bool), METADATA)
operations = st.lists(st.one_of(track_op, batch_op, set_op, adjust_op), min_size=1, max_size=12)


def _apply(product, company, op) -> None:
    now = timezone.now()
    try:
        if op[0] == "track":
            _, code, quantity, back, metadata = op
            usage_track(product_id=product.id, company_id=company.id, feature_code=code, quantity=quantity,
                        timestamp=now - timedelta(minutes=back), metadata=metadata)
        elif op[0] == "batch":
            usage_track_batch(product_id=product.id, requests=[
                TrackRequest(feature_code=code, quantity=quantity, company_id=company.id,
                             timestamp=now - timedelta(minutes=back), metadata=metadata)
                for code, quantity, back, metadata in op[1]
            ])
        elif op[0] == "set":
            _, code, value, metadata = op
            usage_set(product_id=product.id, company_id=company.id, feature_code=code, absolute_value=value,
                      reason="t", metadata=metadata)
        else:
            _, code, delta, metadata = op
            usage_adjust(product_id=product.id, company_id=company.id, feature_code=code, delta=delta, reason="t",
                         metadata=metadata)
    except ApplicationError:
        pass  # refused: nothing recorded


@pytest.mark.django_db
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_hourly_and_dimension_rollups_equal_the_events_after_any_sequence_of_writes(
    product, company, features, tokens, ops
):
    for op in ops:
        _apply(product, company, op)
    assert_exact()


@pytest.mark.django_db
def test_compaction_prunes_old_hours_and_merges_a_dimensions_old_hours_into_days(product, company, features, tokens):
    for op in [
        ("track", "tokens", 3, 0, {"model": "a"}), ("track", "tokens", 4, 3000, {"model": "b", "region": "eu"}),
        ("batch", [("tokens", 2, 10, {"model": "a"}), ("tokens", 1, 20000, {}), ("ai_credit", 5, 50, {})]),
        ("adjust", "tokens", -2, {"model": "b"}),
    ]:
        _apply(product, company, op)
    before = dimension_events_summary(by_day=True)
    assert dimension_summary(by_day=True) == before

    # 40 days on: the hours leave the hourly table (the days stay in the daily
    # rollups) and a dimension's hours merge into days, totals unchanged.
    result = rollups_compact(now=timezone.now() + timedelta(days=40), since=None)

    assert result.hours_pruned > 0 and result.rows_moved > 0
    assert not UsageHourlyRollup.objects.exists()
    assert not UsageDimensionRollup.objects.exclude(period_start__hour=0).exists()
    assert dimension_summary(by_day=True) == before
    assert rollups_summary() == events_summary()


@pytest.mark.django_db
def test_each_dimension_gets_the_events_value_and_events_without_it_count_under_null(product, company, tokens):
    usage_track(product_id=product.id, company_id=company.id, feature_code="tokens", quantity=5,
                metadata={"model": "gpt-4", "platform": "web"})
    usage_track(product_id=product.id, company_id=company.id, feature_code="tokens", quantity=2,
                metadata={"model": {"b": 1, "a": True}})
    rows = {(r.dimension, r.value): (r.quantity, r.events) for r in UsageDimensionRollup.objects.all()}
    assert rows == {
        ("model", "gpt-4"): (5, 1), ("model", '{"a":true,"b":1}'): (2, 1),
        ("platform", "web"): (5, 1), ("platform", ""): (2, 1),
        ("region", ""): (7, 2),
    }
    (hour,) = UsageHourlyRollup.objects.all()
    assert (hour.quantity, hour.events, hour.hour) == (7, 2, timezone.now().replace(minute=0, second=0, microsecond=0))


@pytest.mark.django_db
def test_a_refused_track_and_a_replay_leave_hours_and_dimensions_alone(product, company, features):
    limited, _ = features
    limited.dimensions = ["model"]
    limited.save()
    for _ in range(2):
        usage_track(product_id=product.id, company_id=company.id, feature_code="ai_credit", quantity=7,
                    idempotency_key="k", metadata={"model": "a"})
    with pytest.raises(ApplicationError):
        usage_track(product_id=product.id, company_id=company.id, feature_code="ai_credit", quantity=60,
                    metadata={"model": "a"})
    assert [(r.quantity, r.events) for r in UsageHourlyRollup.objects.all()] == [(7, 1)]
    assert [(r.value, r.quantity, r.events) for r in UsageDimensionRollup.objects.all()] == [("a", 7, 1)]


# --- The top-100 fold ----------------------------------------------------------------------


def _many_values(product, company, *, day_offset: int = 2, values: int = 130, prefix: str = "m"):
    """`values` distinct models on one past day: model n gets n + 1 events."""
    when = timezone.now() - timedelta(days=day_offset)
    requests = []
    for n in range(values):
        requests += [
            TrackRequest(feature_code="tokens", quantity=1, company_id=company.id, timestamp=when,
                         metadata={"model": f"{prefix}{n:03d}", "platform": "web"})
        ] * (1 + n % 7 + (50 if n < 3 else 0))
    for start in range(0, len(requests), 1000):
        usage_track_batch(product_id=product.id, requests=requests[start : start + 1000])
    return when


@pytest.mark.django_db
def test_the_fold_keeps_a_days_100_most_frequent_values_and_moves_the_rest_into_other(
    api, product, company, tokens
):
    when = _many_values(product, company)
    query = {"companyId": str(company.id), "featureCode": "tokens", "dimension": "model",
             "from": (when - timedelta(days=1)).date().isoformat(), "to": (when + timedelta(days=1)).date().isoformat()}
    before = api.get(URL, query).json()["data"]
    day_totals = per_dimension_day(dimension_summary())

    result = rollups_compact()

    assert result.groups_folded == 1
    values = set(UsageDimensionRollup.objects.filter(dimension="model").values_list("value", flat=True))
    assert len(values) == 101 and OTHER_VALUE in values
    assert {"m000", "m001", "m002"} <= values  # the most frequent stay
    assert per_dimension_day(dimension_summary()) == day_totals  # nothing lost, nothing doubled
    # The API answers the same before and after the stored fold (it applies the same rule).
    after = api.get(URL, query).json()["data"]
    assert after == before
    assert len(after) == 101 and after[-1]["dimensionValue"] == "other"
    assert rollups_compact().groups_folded == 0  # idempotent


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fold_and_concurrent_writers_of_new_and_folded_values_stay_exact(product, company, tokens):
    when = _many_values(product, company, values=120)
    start = threading.Event()

    def write(n):
        try:
            start.wait(timeout=10)
            usage_track(product_id=product.id, company_id=company.id, feature_code="tokens", quantity=1 + n % 3,
                        timestamp=when, metadata={"model": f"m{(n * 7) % 140:03d}", "platform": "ios"})
        finally:
            connection.close()

    def fold(_):
        try:
            start.wait(timeout=10)
            for _ in range(3):
                rollups_compact()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [pool.submit(fold, 0)] + [pool.submit(write, n) for n in range(80)]
        start.set()
        for future in futures:
            future.result()

    assert rollups_summary() == events_summary()
    assert hourly_summary() == hourly_events_summary()
    # Per dimension and hour, the values (kept + other) sum to the events.
    expected = per_dimension_day(dimension_events_summary())
    assert per_dimension_day(dimension_summary()) == expected
    rollups_compact()
    assert len(set(UsageDimensionRollup.objects.filter(dimension="model").values_list("value", flat=True))) <= 101
    assert per_dimension_day(dimension_summary()) == expected


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_hourly_and_dimension_rollups_stay_exact_under_concurrent_tracks_batches_and_corrections(
    product, company, features, tokens
):
    start = threading.Event()
    now = timezone.now()

    def run(n):
        try:
            start.wait(timeout=10)
            metadata = {"model": ["a", "b", "c"][n % 3], "platform": ["web", "ios"][n % 2]}
            if n % 4 == 0:
                usage_track_batch(product_id=product.id, requests=[
                    TrackRequest(feature_code="tokens", quantity=1 + i, company_id=company.id,
                                 timestamp=now - timedelta(hours=i * 13), metadata={**metadata, "region": str(i)})
                    for i in range(5)
                ])
            elif n % 4 == 1:
                usage_adjust(product_id=product.id, company_id=company.id, feature_code="tokens", delta=2, reason="t",
                             metadata=metadata)
            else:
                usage_track(product_id=product.id, company_id=company.id, feature_code="tokens", quantity=1,
                            timestamp=now - timedelta(hours=n % 3 * 24), metadata=metadata)
        except ApplicationError:
            pass
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(run, n) for n in range(96)]
        start.set()
        for future in futures:
            future.result()

    assert UsageEvent.objects.count() > 90
    assert_exact()
    rollups_rebuild()
    assert_exact()


@pytest.mark.django_db
def test_backfill_rebuilds_hours_and_dimensions(product, company, tokens):
    for back, model in ((0, "a"), (3000, "b"), (20000, "a")):
        usage_track(product_id=product.id, company_id=company.id, feature_code="tokens", quantity=3,
                    timestamp=timezone.now() - timedelta(minutes=back), metadata={"model": model})
    expected = (hourly_summary(), dimension_summary())
    UsageHourlyRollup.objects.all().delete()
    UsageDimensionRollup.objects.all().delete()
    rollups_rebuild()
    assert (hourly_summary(), dimension_summary()) == expected


@pytest.mark.django_db
def test_merge_moves_hours_and_dimensions(product, company, tokens):
    duplicate = CompanyFactory(name="Acme dup")
    ProductLinkFactory(product=product, company=duplicate, external_org_id="org_dup")
    FeatureAccessFactory(company=duplicate, feature=tokens, quantity_limit=None)
    usage_track(product_id=product.id, company_id=company.id, feature_code="tokens", quantity=2, metadata={"model": "a"})
    usage_track(product_id=product.id, company_id=duplicate.id, feature_code="tokens", quantity=5, metadata={"model": "a"})
    usage_track(product_id=product.id, company_id=duplicate.id, feature_code="tokens", quantity=1, metadata={"model": "b"})

    rollups_merge(from_company_id=duplicate.id, into_company_id=company.id)

    assert [(r.quantity, r.events) for r in UsageHourlyRollup.objects.filter(company=company)] == [(8, 3)]
    kept = {r.value: (r.quantity, r.events) for r in UsageDimensionRollup.objects.filter(company=company, dimension="model")}
    assert kept == {"a": (7, 2), "b": (1, 1)}
    assert not UsageHourlyRollup.objects.filter(company=duplicate).exists()
    assert not UsageDimensionRollup.objects.filter(company=duplicate).exists()


# --- GET /usage/stats?groupBy=hour&dimension= ---------------------------------------------------


@pytest.mark.django_db
def test_hourly_stats_and_hourly_stats_by_dimension(api, product, company, tokens):
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    earlier = hour - timedelta(hours=2)
    for when, model, quantity in ((now, "gpt-4", 5), (now, "claude", 1), (earlier + timedelta(minutes=5), "gpt-4", 2)):
        usage_track(product_id=product.id, company_id=company.id, feature_code="tokens", quantity=quantity,
                    timestamp=when, metadata={"model": model})
    usage_track(product_id=product.id, company_id=company.id, feature_code="tokens", quantity=4, timestamp=now)
    window = {"companyId": str(company.id), "from": (hour - timedelta(hours=3)).isoformat(),
              "to": (hour + timedelta(hours=1)).isoformat(), "groupBy": "hour"}

    totals = api.get(URL, window)
    assert totals.status_code == 200, totals.json()
    assert [(r["periodStart"], r["featureCode"], r["quantity"], r["events"]) for r in totals.json()["data"]] == [
        (earlier.strftime("%Y-%m-%dT%H:00:00Z"), "tokens", 2, 1),
        (hour.strftime("%Y-%m-%dT%H:00:00Z"), "tokens", 10, 3),
    ]
    by_model = api.get(URL, {**window, "featureCode": "tokens", "dimension": "model"}).json()["data"]
    assert [(r["periodStart"][11:13], r["dimensionValue"], r["quantity"], r["billableQuantity"]) for r in by_model] == [
        (f"{earlier.hour:02d}", "gpt-4", 2, 0),
        (f"{hour.hour:02d}", None, 4, 2),  # the last event passes the 10 included units
        (f"{hour.hour:02d}", "claude", 1, 0),
        (f"{hour.hour:02d}", "gpt-4", 5, 0),
    ]
    first = api.get(URL, {**window, "featureCode": "tokens", "dimension": "model", "limit": 2}).json()
    second = api.get(URL, {**window, "featureCode": "tokens", "dimension": "model", "limit": 2,
                           "cursor": first["nextCursor"]}).json()
    assert first["data"] + second["data"] == by_model and second["hasMore"] is False
    daily = api.get(URL, {**window, "groupBy": "day", "featureCode": "tokens", "dimension": "platform"}).json()["data"]
    assert {r["dimensionValue"] for r in daily} == {None}  # no event had a platform
    assert (sum(r["quantity"] for r in daily), sum(r["events"] for r in daily)) == (12, 4)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, field, status",
    [
        ({"featureCode": "tokens", "dimension": "colour"}, "dimension", 400),
        ({"dimension": "model"}, "featureCode", 400),
        ({"featureCode": "nope", "dimension": "model"}, "featureCode", 404),
        ({"featureCode": "tokens", "dimension": "model", "groupBy": "hour", "old": True}, "from", 400),
        ({"groupBy": "hour", "old": True}, "from", 400),
        ({"groupBy": "minute"}, "groupBy", 400),
    ],
)
def test_bad_dimension_and_hour_queries_are_400_with_field_messages(api, company, tokens, query, field, status):
    now = timezone.now()
    start = now - timedelta(days=40 if query.pop("old", False) else 1)
    response = api.get(URL, {"companyId": str(company.id), "from": start.isoformat(), "to": now.isoformat(), **query})
    assert response.status_code == status, response.json()
    assert field in response.json()["error"]["details"]["fields"]


@pytest.mark.django_db
def test_daily_dimension_stats_are_one_query_of_the_rollups(product, company, tokens):
    _many_values(product, company, values=20)
    from django.test.utils import CaptureQueriesContext

    now = timezone.now()
    with CaptureQueriesContext(connection) as captured:
        page = usage_stats(product_id=product.id, company_id=company.id, start=now - timedelta(days=365), end=now,
                           feature_code="tokens", dimension="model")
    assert len(page.items) == 20
    assert len(captured.captured_queries) == 2  # the feature's dimensions, then the rollups
    assert "metering_usageevent" not in " ".join(q["sql"] for q in captured.captured_queries)


# --- The catalog ----------------------------------------------------------------------------


def test_a_fourth_dimension_is_a_catalog_error_naming_its_path():
    catalog = {
        "product": {"code": "p", "name": "P"},
        "features": [
            {"code": "ok", "name": "Ok", "kind": "metered", "dimensions": ["model", "platform", "region"]},
            {"code": "four", "name": "Four", "kind": "metered", "dimensions": ["a", "b", "c", "d"]},
            {"code": "flag", "name": "Flag", "kind": "boolean", "dimensions": ["a"]},
            {"code": "bad", "name": "Bad", "kind": "metered", "dimensions": ["has space"]},
        ],
    }
    with pytest.raises(CatalogError) as raised:
        catalog_validate(catalog)
    fields = raised.value.details["fields"]
    assert set(fields) == {"features[1].dimensions", "features[2].dimensions", "features[3].dimensions"}
    assert "at most 3" in fields["features[1].dimensions"][0]
    assert catalog_validate({**catalog, "features": catalog["features"][:1]})["features"][0]["dimensions"] == list(
        DIMENSIONS
    )


def test_dimension_values_as_text():
    assert dimension_value({"m": "x" * 300}, "m") == "x" * 100
    assert dimension_value({"m": 1.5}, "m") == "1.5"
    assert dimension_value({"m": None}, "m") == dimension_value({}, "m") == dimension_value(None, "m") == ""
