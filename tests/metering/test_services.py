"""The usage services: what track, batch, set and adjust record and answer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from companies.actors import Actor
from entitlements.cache import access_key
from metering.selectors import current_usage_read as current_usage
from metering.models import AppendOnlyError, UsageEvent, UsageMeter, UsageSnapshot
from metering.services import (
    TrackRequest,
    usage_adjust,
    usage_set,
    usage_track,
    usage_track_batch,
)
from tests.factories.companies import CompanyFactory, ProductLinkFactory
from tests.factories.entitlements import FeatureFactory

pytestmark = pytest.mark.django_db


def track(product, company, code="ai_credit", quantity=1, **kwargs):
    return usage_track(product_id=product.id, company_id=company.id, feature_code=code, quantity=quantity, **kwargs)


def meter_value(company, code="ai_credit") -> int:
    return sum(UsageMeter.objects.filter(company=company, feature__code=code).values_list("value", flat=True))


class TestTrack:
    def test_result_reports_usage_limit_and_billable(self, product, company, access):
        # access: limit 100, included 10
        first = track(product, company, quantity=8)
        second = track(product, company, quantity=5)
        assert (second.previous_usage, second.current_usage, second.delta) == (8, 13, 5)
        assert second.quantity_limit == 100 and second.remaining == 87 and not second.is_at_limit
        assert second.included_quantity == 10 and second.billable_quantity == 3
        assert second.meter_id == first.meter_id and second.event_id != first.event_id
        assert second.feature_code == "ai_credit" and second.success and not second.replayed

    def test_event_records_the_change(self, product, company, access):
        actor = Actor.for_api_key(key_id="k1", name="backend")
        result = track(product, company, quantity=3, metadata={"model": "gpt"}, actor=actor, idempotency_key="m-1")
        event = UsageEvent.objects.get(pk=result.event_id)
        assert (event.event_type, event.quantity, event.previous_value, event.new_value) == ("increment", 3, 0, 3)
        assert event.metadata == {"model": "gpt"} and event.idempotency_key == "m-1"
        assert (event.actor_kind, event.actor_id, event.actor_label) == ("api_key", "k1", "backend")
        assert event.source == "api" and event.product_id == product.id
        assert event.stripe_event_identifier == str(event.id)

    def test_external_org_id_names_the_company(self, product, company, access):
        result = usage_track(product_id=product.id, external_org_id="org_acme", feature_code="ai_credit", quantity=2)
        assert result.current_usage == 2 and meter_value(company) == 2

    def test_reaching_the_limit_exactly_is_allowed(self, product, company, access):
        result = track(product, company, quantity=100)
        assert result.is_at_limit and result.remaining == 0

    def test_passing_the_limit_is_412_and_records_nothing(self, product, company, access):
        track(product, company, quantity=95)
        with pytest.raises(PreconditionFailed) as refused:
            track(product, company, quantity=6, idempotency_key="too-much")
        assert refused.value.details == {"currentUsage": 95, "quantityLimit": 100, "requested": 6}
        assert meter_value(company) == 95
        assert UsageEvent.objects.count() == 1
        # The key was not consumed: once the limit allows it, the same key counts.
        access.quantity_limit = 200
        access.save()
        assert track(product, company, quantity=6, idempotency_key="too-much").current_usage == 101

    def test_unlimited_access_has_no_remaining(self, product, company, make_metered):
        make_metered("tokens", company=company, limit=None)
        result = track(product, company, "tokens", 10**12)
        assert result.quantity_limit is None and result.remaining is None and not result.is_at_limit

    @pytest.mark.parametrize(
        ("access_kwargs", "reason"),
        [
            ({"is_enabled": False}, "disabled"),
            ({"valid_until": timezone.now() - timedelta(minutes=1)}, "expired"),
            ({"valid_from": timezone.now() + timedelta(days=1)}, "not_yet_valid"),
        ],
    )
    def test_inactive_access_is_412(self, product, company, make_metered, access_kwargs, reason):
        make_metered("calls", company=company, **access_kwargs)
        with pytest.raises(PreconditionFailed) as refused:
            track(product, company, "calls")
        assert refused.value.details == {"featureCode": "calls", "reason": reason}
        assert not UsageEvent.objects.exists() and not UsageMeter.objects.exists()

    def test_missing_access_is_412(self, product, company, feature):
        with pytest.raises(PreconditionFailed) as refused:
            track(product, company)
        assert refused.value.details["reason"] == "no_access"

    def test_unknown_feature_is_404(self, product, company, access):
        with pytest.raises(NotFound) as missing:
            track(product, company, "nope")
        assert missing.value.details == {"fields": {"featureCode": ["Unknown feature."]}}

    def test_feature_that_is_not_metered_is_400(self, product, company):
        FeatureFactory(product=product, code="sso", kind="boolean")
        with pytest.raises(BadRequest) as invalid:
            track(product, company, "sso")
        assert "featureCode" in invalid.value.details["fields"]

    def test_company_of_another_product_is_404(self, product, other_product, access):
        stranger = CompanyFactory()
        ProductLinkFactory(product=other_product, company=stranger)
        with pytest.raises(NotFound):
            track(product, stranger)
        with pytest.raises(NotFound):
            usage_track(product_id=product.id, external_org_id="org_unknown", feature_code="ai_credit")

    def test_feature_of_another_product_is_404(self, product, other_product, company, access):
        other_feature = FeatureFactory(product=other_product, code="other_metered", kind="metered")
        ProductLinkFactory(product=other_product, company=company)
        with pytest.raises(NotFound):
            track(product, company, other_feature.code)

    @pytest.mark.parametrize("quantity", [0, -1, 2**63, True, 1.5, "3"])
    def test_bad_quantities_are_400(self, product, company, access, quantity):
        with pytest.raises(BadRequest):
            track(product, company, quantity=quantity)
        assert not UsageEvent.objects.exists()

    def test_counter_never_overflows_64_bits(self, product, company, make_metered):
        make_metered("bytes", company=company)
        track(product, company, "bytes", 2**63 - 10)
        with pytest.raises(BadRequest):
            track(product, company, "bytes", 11)
        assert meter_value(company, "bytes") == 2**63 - 10

    @pytest.mark.parametrize(
        ("offset", "ok"),
        [
            (timedelta(days=-35) + timedelta(seconds=30), True),
            (timedelta(days=-35, seconds=-1), False),
            (timedelta(minutes=4), True),
            (timedelta(minutes=5, seconds=1), False),
        ],
    )
    def test_timestamp_window(self, product, company, make_metered, offset, ok):
        make_metered("calls", company=company, reset_period="never")
        timestamp = timezone.now() + offset
        if ok:
            assert UsageEvent.objects.get(pk=track(product, company, "calls", timestamp=timestamp).event_id).event_time == timestamp
        else:
            with pytest.raises(BadRequest) as invalid:
                track(product, company, "calls", timestamp=timestamp)
            assert "timestamp" in invalid.value.details["fields"]
            assert not UsageEvent.objects.exists()


class TestIdempotency:
    def test_replay_returns_the_original_result_and_counts_nothing(self, product, company, access):
        original = track(product, company, quantity=4, idempotency_key="job-1")
        track(product, company, quantity=1)
        replay = track(product, company, quantity=4, idempotency_key="job-1")
        assert replay.replayed and not original.replayed
        assert (replay.event_id, replay.current_usage, replay.previous_usage) == (original.event_id, 4, 0)
        assert meter_value(company) == 5
        assert UsageEvent.objects.filter(idempotency_key="job-1").count() == 1

    @pytest.mark.parametrize(
        "change",
        [{"quantity": 5}, {"metadata": {"x": 1}}, {"code": "other"}, {"timestamp_offset": timedelta(minutes=-1)}],
    )
    def test_same_key_with_another_body_is_409(self, product, company, access, make_metered, change):
        make_metered("other", company=company)
        track(product, company, quantity=4, idempotency_key="job-1")
        kwargs = {"quantity": change.get("quantity", 4), "idempotency_key": "job-1"}
        if "metadata" in change:
            kwargs["metadata"] = change["metadata"]
        if "timestamp_offset" in change:
            kwargs["timestamp"] = timezone.now() + change["timestamp_offset"]
        with pytest.raises(Conflict):
            track(product, company, change.get("code", "ai_credit"), **kwargs)
        assert meter_value(company) == 4

    def test_replay_wins_over_a_limit_reached_since(self, product, company, access):
        original = track(product, company, quantity=100, idempotency_key="fill")
        replay = track(product, company, quantity=100, idempotency_key="fill")
        assert replay.replayed and replay.event_id == original.event_id

    def test_replay_wins_over_access_revoked_since(self, product, company, access):
        track(product, company, quantity=1, idempotency_key="k")
        access.is_enabled = False
        access.save()
        assert track(product, company, quantity=1, idempotency_key="k").replayed

    def test_keys_are_scoped_to_the_product(self, product, other_product, company, access):
        other_feature = FeatureFactory(product=other_product, code="ai_credit", kind="metered", reset_period="monthly")
        ProductLinkFactory(product=other_product, company=company)
        from tests.factories.entitlements import FeatureAccessFactory

        FeatureAccessFactory(company=company, feature=other_feature)
        track(product, company, quantity=2, idempotency_key="shared")
        other = usage_track(
            product_id=other_product.id, company_id=company.id, feature_code="ai_credit", quantity=2, idempotency_key="shared"
        )
        assert not other.replayed and other.current_usage == 2

    def test_external_org_id_and_company_id_are_the_same_body(self, product, company, access):
        track(product, company, quantity=2, idempotency_key="k")
        replay = usage_track(
            product_id=product.id, external_org_id="org_acme", feature_code="ai_credit", quantity=2, idempotency_key="k"
        )
        assert replay.replayed


class TestBillableAndStripe:
    def test_billable_delta_and_delivery_status(self, product, company, make_metered):
        make_metered("ai", company=company, included=10, meter_event="ai_tokens")
        within = UsageEvent.objects.get(pk=track(product, company, "ai", 6).event_id)
        crossing = UsageEvent.objects.get(pk=track(product, company, "ai", 7).event_id)
        beyond = UsageEvent.objects.get(pk=track(product, company, "ai", 5).event_id)
        assert (within.billable_delta, within.stripe_delivery_status) == (0, "not_applicable")
        assert (crossing.billable_delta, crossing.stripe_delivery_status) == (3, "pending")
        assert (beyond.billable_delta, beyond.stripe_delivery_status) == (5, "pending")
        refund = usage_adjust(product_id=product.id, company_id=company.id, feature_code="ai", delta=-12, reason="refund")
        refund_event = UsageEvent.objects.get(pk=refund.event_id)
        assert (refund_event.billable_delta, refund_event.stripe_delivery_status) == (-8, "pending")

    def test_features_without_meter_event_name_are_not_delivered(self, product, company, make_metered):
        make_metered("calls", company=company)
        event = UsageEvent.objects.get(pk=track(product, company, "calls", 5).event_id)
        assert (event.billable_delta, event.stripe_delivery_status) == (5, "not_applicable")


class TestAppendOnly:
    def test_events_cannot_be_edited_or_deleted(self, product, company, access):
        event = UsageEvent.objects.get(pk=track(product, company, quantity=1).event_id)
        event.quantity = 50
        with pytest.raises(AppendOnlyError):
            event.save()
        with pytest.raises(AppendOnlyError):
            event.delete()
        with pytest.raises(AppendOnlyError):
            UsageEvent.objects.all().delete()
        # Billing's delivery bookkeeping is the one exception.
        event = UsageEvent.objects.get(pk=event.pk)
        event.stripe_delivery_status = "delivered"
        event.delivered_at = timezone.now()
        event.save(update_fields=["stripe_delivery_status", "delivered_at"])


class TestSet:
    def test_set_records_event_and_snapshot_and_may_exceed_the_limit(self, product, company, access):
        track(product, company, quantity=40)
        result = usage_set(
            product_id=product.id,
            company_id=company.id,
            feature_code="ai_credit",
            absolute_value=150,
            reason="Migrated from old system",
            performed_by="alice@support",
            actor=Actor.for_api_key(key_id="k", name="ops"),
            metadata={"ticket": "S-1"},
        )
        assert (result.previous_usage, result.current_usage, result.delta) == (40, 150, 110)
        assert result.is_at_limit and result.remaining == 0 and result.billable_quantity == 140
        event = UsageEvent.objects.get(pk=result.event_id)
        assert (event.event_type, event.adjustment_reason, event.performed_by) == ("set", "Migrated from old system", "alice@support")
        snapshot = UsageSnapshot.objects.get(trigger_event=event)
        assert (snapshot.snapshot_type, snapshot.absolute_value, snapshot.billable_value) == ("set", 150, 140)
        assert snapshot.reason == "Migrated from old system" and snapshot.created_by == "alice@support"
        # Tracking stays refused above the limit.
        with pytest.raises(PreconditionFailed):
            track(product, company)

    def test_set_down_records_a_negative_delta(self, product, company, access):
        track(product, company, quantity=40)
        result = usage_set(product_id=product.id, company_id=company.id, feature_code="ai_credit", absolute_value=0, reason="reset")
        assert result.delta == -40 and meter_value(company) == 0

    @pytest.mark.parametrize("reason", ["", "   "])
    def test_reason_is_required(self, product, company, access, reason):
        with pytest.raises(BadRequest) as invalid:
            usage_set(product_id=product.id, company_id=company.id, feature_code="ai_credit", absolute_value=3, reason=reason)
        assert "reason" in invalid.value.details["fields"]
        assert not UsageEvent.objects.exists()

    def test_negative_absolute_value_is_400(self, product, company, access):
        with pytest.raises(BadRequest):
            usage_set(product_id=product.id, company_id=company.id, feature_code="ai_credit", absolute_value=-1, reason="x")

    def test_set_works_without_access_row(self, product, company, feature):
        result = usage_set(product_id=product.id, company_id=company.id, feature_code="ai_credit", absolute_value=3, reason="x")
        assert result.current_usage == 3 and result.quantity_limit is None

    def test_set_with_idempotency_key_replays(self, product, company, access):
        kwargs = dict(product_id=product.id, company_id=company.id, feature_code="ai_credit", absolute_value=3, reason="x")
        first = usage_set(idempotency_key="s1", **kwargs)
        again = usage_set(idempotency_key="s1", **kwargs)
        assert again.replayed and again.event_id == first.event_id
        assert UsageSnapshot.objects.count() == 1
        with pytest.raises(Conflict):
            usage_set(idempotency_key="s1", **{**kwargs, "absolute_value": 4})


class TestAdjust:
    def test_adjust_may_pass_the_limit(self, product, company, access):
        track(product, company, quantity=90)
        result = usage_adjust(product_id=product.id, company_id=company.id, feature_code="ai_credit", delta=50, reason="bonus")
        assert (result.previous_usage, result.current_usage) == (90, 140)
        assert not UsageSnapshot.objects.exists()  # only `set` writes snapshots

    def test_adjust_never_goes_below_zero(self, product, company, access):
        track(product, company, quantity=5)
        with pytest.raises(BadRequest) as invalid:
            usage_adjust(product_id=product.id, company_id=company.id, feature_code="ai_credit", delta=-6, reason="refund")
        assert invalid.value.details["currentUsage"] == 5
        assert meter_value(company) == 5 and UsageEvent.objects.count() == 1
        assert usage_adjust(
            product_id=product.id, company_id=company.id, feature_code="ai_credit", delta=-5, reason="refund"
        ).current_usage == 0

    def test_zero_delta_is_400(self, product, company, access):
        with pytest.raises(BadRequest):
            usage_adjust(product_id=product.id, company_id=company.id, feature_code="ai_credit", delta=0, reason="x")

    def test_adjusting_an_event_corrects_its_period(self, product, company, access):
        backdated = track(product, company, quantity=7, timestamp=timezone.now() - timedelta(days=33))
        track(product, company, quantity=3)
        result = usage_adjust(
            product_id=product.id,
            company_id=company.id,
            feature_code="ai_credit",
            delta=-7,
            reason="Duplicate import",
            adjusts_event_id=backdated.event_id,
        )
        assert result.meter_id == backdated.meter_id and result.current_usage == 0
        event = UsageEvent.objects.get(pk=result.event_id)
        assert event.adjusts_event_id == backdated.event_id

    def test_adjusting_an_unknown_event_is_404(self, product, company, access, make_metered):
        make_metered("other", company=company)
        other_event = track(product, company, "other", 1)
        for event_id in (other_event.event_id, "00000000-0000-0000-0000-000000000000"):
            with pytest.raises(NotFound):
                usage_adjust(
                    product_id=product.id, company_id=company.id, feature_code="ai_credit", delta=-1, reason="x",
                    adjusts_event_id=event_id,
                )


class TestBatch:
    def requests(self, company, *specs):
        return [TrackRequest(feature_code=spec.get("code", "ai_credit"), company_id=company.id, **{k: v for k, v in spec.items() if k != "code"}) for spec in specs]

    def test_results_in_order_with_limit_per_event(self, product, company, access):
        results = usage_track_batch(
            product_id=product.id,
            requests=self.requests(
                company,
                {"quantity": 60, "idempotency_key": "a"},
                {"quantity": 50},  # would pass 100
                {"quantity": 40},  # still fits
                {"quantity": 1, "code": "nope"},
                {"quantity": 60, "idempotency_key": "a"},  # repeat within the batch
                {"quantity": 61, "idempotency_key": "a"},  # same key, other body
            ),
        )
        assert [r.status for r in results] == ["ok", "error", "ok", "error", "duplicate", "error"]
        assert [r.index for r in results] == list(range(6))
        assert results[0].result.current_usage == 60
        assert results[1].error.details == {"currentUsage": 60, "quantityLimit": 100, "requested": 50}
        assert results[2].result.previous_usage == 60 and results[2].result.current_usage == 100
        assert isinstance(results[3].error, NotFound)
        assert results[4].result.event_id == results[0].result.event_id and results[4].result.replayed
        assert isinstance(results[5].error, Conflict)
        assert meter_value(company) == 100
        assert UsageEvent.objects.count() == 2

    def test_duplicates_of_earlier_calls(self, product, company, access):
        single = track(product, company, quantity=3, idempotency_key="k1")
        results = usage_track_batch(
            product_id=product.id, requests=self.requests(company, {"quantity": 3, "idempotency_key": "k1"}, {"quantity": 2, "idempotency_key": "k1"})
        )
        assert [r.status for r in results] == ["duplicate", "error"]
        assert results[0].result.event_id == single.event_id
        assert isinstance(results[1].error, Conflict)
        assert meter_value(company) == 3

    def test_mixed_companies_features_and_periods(self, product, company, make_metered):
        make_metered("calls", company=company, reset_period="daily")
        second = CompanyFactory()
        ProductLinkFactory(product=product, company=second, external_org_id="org_two")
        make_metered("calls", company=second, reset_period="daily")
        yesterday = timezone.now() - timedelta(days=1)
        results = usage_track_batch(
            product_id=product.id,
            requests=[
                TrackRequest(feature_code="calls", company_id=company.id, quantity=1),
                TrackRequest(feature_code="calls", external_org_id="org_two", quantity=2),
                TrackRequest(feature_code="calls", company_id=company.id, quantity=4, timestamp=yesterday),
                TrackRequest(feature_code="calls", company_id=company.id, quantity=8),
                TrackRequest(feature_code="calls", external_org_id="org_missing", quantity=1),
            ],
        )
        assert [r.status for r in results] == ["ok", "ok", "ok", "ok", "error"]
        assert results[3].result.current_usage == 9  # today: 1 + 8
        assert results[2].result.current_usage == 4  # yesterday's meter
        assert meter_value(second, "calls") == 2
        assert UsageMeter.objects.filter(company=company).count() == 2

    def test_bad_events_are_errors_of_their_own(self, product, company, access):
        now = timezone.now()
        results = usage_track_batch(
            product_id=product.id,
            requests=self.requests(company, {"quantity": 0}, {"quantity": 1, "timestamp": now - timedelta(days=40)}, {"quantity": 2}),
        )
        assert [r.status for r in results] == ["error", "error", "ok"]
        assert all(isinstance(r.error, BadRequest) for r in results[:2])

    def test_more_than_1000_events_is_400(self, product, company, access):
        with pytest.raises(BadRequest):
            usage_track_batch(product_id=product.id, requests=self.requests(company, *[{"quantity": 1}] * 1001))
        assert not UsageEvent.objects.exists()

    def test_query_count_does_not_grow_with_the_batch(self, product, company, make_metered):
        make_metered("calls", company=company)
        track(product, company, "calls")  # the meter exists

        def queries_for(size, prefix):
            requests = [
                TrackRequest(feature_code="calls", company_id=company.id, idempotency_key=f"{prefix}-{n}") for n in range(size)
            ]
            with CaptureQueriesContext(connection) as captured:
                results = usage_track_batch(product_id=product.id, requests=requests)
            assert all(r.status == "ok" for r in results)
            statements = [q["sql"] for q in captured.captured_queries]
            if connection.vendor == "sqlite":
                # SQLite caps bound parameters per statement, so Django splits
                # the one bulk INSERT into chunks there; count it once.
                statements = [sql for sql in statements if not sql.startswith('INSERT INTO "metering_usageevent"')]
            return len(statements)

        small, large = queries_for(10, "s"), queries_for(1000, "l")
        assert small == large
        assert large <= 13  # 12 + the hourly rollup's upsert (a feature with dimensions: one more)
        assert meter_value(company, "calls") == 1011


class TestFeatureChecksSeeUsage:
    def test_usage_reader_reports_current_period_usage(self, product, company, access, feature):
        track(product, company, quantity=12)
        assert current_usage(company_id=company.id, features=[feature], at=timezone.now()) == {feature.id: 12}

    def test_a_warm_check_shows_every_usage_write_at_once(self, product, company, access):
        """The check cache holds access rows, never usage: usage is read live,
        so no usage write can leave a cached check stale."""
        from metering.selectors import feature_check

        def check():
            return feature_check(product_id=product.id, company_id=company.id, feature_code="ai_credit")

        assert check().current_usage == 0
        assert cache.get(access_key(product.id, company.id, "ai_credit")) is not None  # warm
        track(product, company, quantity=5)
        assert check().current_usage == 5
        usage_track_batch(product_id=product.id, requests=[TrackRequest(feature_code="ai_credit", company_id=company.id)])
        assert check().current_usage == 6
        usage_adjust(product_id=product.id, company_id=company.id, feature_code="ai_credit", delta=4, reason="x")
        assert check().current_usage == 10
        usage_set(product_id=product.id, company_id=company.id, feature_code="ai_credit", absolute_value=100, reason="x")
        after = check()
        assert (after.current_usage, after.remaining, after.can_use) == (100, 0, False)


def test_unusual_text_round_trips_through_the_event_insert(product, company, access):
    metadata = {"prompt": 'He said "hi" \\ ünïcödé 🎉', "nested": {"tokens": [1, 2**62], "ok": True, "none": None}}
    key = "key with 'quotes', \"doubles\", ünïcödé and 🎉"
    result = track(product, company, quantity=2, idempotency_key=key, metadata=metadata)
    batch = usage_track_batch(
        product_id=product.id,
        requests=[TrackRequest(feature_code="ai_credit", company_id=company.id, idempotency_key=key + "!", metadata=metadata)],
    )
    for event_id in (result.event_id, batch[0].result.event_id):
        event = UsageEvent.objects.get(pk=event_id)
        assert event.metadata == metadata
        assert event.idempotency_key.startswith(key)
        assert event.event_time.tzinfo is not None
    assert track(product, company, quantity=2, idempotency_key=key, metadata=metadata).replayed


def test_rows_that_usage_events_name_cannot_be_deleted_through_the_orm(product, company, access, feature):
    # Usage events carry no database FK constraints (docs/scaling.md); the
    # ORM's PROTECT is what refuses deleting the rows they point at.
    from django.db.models import ProtectedError

    from metering.models import UsageEvent, UsageMeter
    from metering.services import usage_track

    usage_track(product_id=product.id, feature_code="ai_credit", company_id=company.id, quantity=2)
    event = UsageEvent.objects.get()
    assert (event.company_id, event.feature_id, event.product_id) == (company.id, feature.id, product.id)
    for row in (feature, UsageMeter.objects.get(pk=event.meter_id)):
        with pytest.raises(ProtectedError):
            row.delete()
    with pytest.raises(ProtectedError):
        company.delete()
    assert UsageEvent.objects.filter(pk=event.pk).exists()
