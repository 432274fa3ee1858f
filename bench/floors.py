"""The floors of the benchmarks: the least each measured request can do
under the same stack (gunicorn, Django, DRF parsing and rendering,
PostgreSQL), served by the same server in the same run. Routed only by
`bench.urls`, which only the bench settings use; production never does.

- FloorApi: a GET doing one indexed SELECT (the check's floor).
- FloorTrackApi: one conditional counter UPDATE … RETURNING and one event
  INSERT in a transaction, `int()` parsing, no auth, validation, idempotency
  or periods (the single track's floor).
- FloorTrackBatchApi: parse the events, one UPDATE … RETURNING per meter
  (one company each) and one multi-row INSERT in a transaction (the batch's floor).
- The *WithAuth variants add what every product call pays: API key
  authentication, permission and the rate limit.
- RawUsageStatsApi: GET /usage/stats answered from the raw usage events
  (one GROUP BY over the company's events of the range) instead of the daily
  rollups: the same auth, validation, visibility check and JSON as the real
  view, only the query differs (the baseline of bench/stats.py)."""

from __future__ import annotations

import uuid
from collections import defaultdict

from django.db import connection, transaction
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.views import APIView

from companies.models import Company


class _NoAuth:
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []


class _WithAuth:
    authentication_classes = APIView.authentication_classes
    permission_classes = APIView.permission_classes
    throttle_classes = APIView.throttle_classes


# --- the check ---------------------------------------------------------------------------


class FloorApi(_NoAuth, APIView):
    """One primary-key lookup and a JSON body."""

    def get(self, request, company_id):
        row = Company.objects.filter(pk=company_id).values("id", "name").first()
        return Response({"companyId": str(row["id"]), "name": row["name"]} if row else {})


class AuthenticatedFloorApi(_WithAuth, FloorApi):
    pass


# --- tracking ------------------------------------------------------------------------------

_UPDATE = (
    "UPDATE metering_usagemeter SET value = value + %s "
    "WHERE id = %s AND value + %s <= 9223372036854775807 RETURNING value"
)
_INSERT_COLUMNS = (
    "INSERT INTO metering_usageevent (id, product_id, company_id, feature_id, meter_id, event_type, quantity, "
    "previous_value, new_value, quantity_limit, included_quantity, billable_delta, idempotency_key, "
    "request_fingerprint, event_time, created_at, source, performed_by, actor_kind, actor_id, actor_label, "
    "adjustment_reason, metadata, stripe_delivery_status, stripe_event_identifier, stripe_delivery_error, "
    "stripe_delivery_attempts) VALUES "
)
_INSERT_ROW = (
    "(%s, %s, %s, %s, %s, 'increment', %s, %s, %s, NULL, 0, 0, %s, '', %s, %s, "
    "'api', '', '', '', '', '', '{}', 'not_applicable', %s, '', 0)"
)


def _event_params(data: dict, *, quantity: int, value: int, now) -> list:
    event_id = uuid.uuid4()
    return [
        event_id, data["productId"], data["companyId"], data["featureId"], data["meterId"], quantity,
        value - quantity, value, data.get("idempotencyKey"), now, now, str(event_id),
    ]  # fmt: skip


class FloorTrackApi(_NoAuth, APIView):
    def post(self, request):
        data = request.data
        quantity = int(data.get("quantity", 1))
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_UPDATE, [quantity, data["meterId"], quantity])
            (value,) = cursor.fetchone()
            params = _event_params(data, quantity=quantity, value=value, now=now)
            cursor.execute(_INSERT_COLUMNS + _INSERT_ROW, params)
        return Response({"currentUsage": value, "eventId": str(params[0])})


class FloorTrackWithAuthApi(_WithAuth, FloorTrackApi):
    pass


class FloorTrackBatchApi(_NoAuth, APIView):
    def post(self, request):
        events = request.data["events"]
        now = timezone.now()
        per_meter: dict[str, int] = defaultdict(int)
        for event in events:
            per_meter[event["meterId"]] += int(event.get("quantity", 1))
        params: list = []
        with transaction.atomic(), connection.cursor() as cursor:
            values = {}
            for meter_id in sorted(per_meter):
                cursor.execute(_UPDATE, [per_meter[meter_id], meter_id, per_meter[meter_id]])
                values[meter_id] = cursor.fetchone()[0] - per_meter[meter_id]
            for event in events:
                quantity = int(event.get("quantity", 1))
                values[event["meterId"]] += quantity
                params += _event_params(event, quantity=quantity, value=values[event["meterId"]], now=now)
            cursor.execute(_INSERT_COLUMNS + ", ".join([_INSERT_ROW] * len(events)), params)
        return Response({"results": len(events)})


# --- usage statistics ----------------------------------------------------------------------

_RAW_STATS_SQL = (
    "SELECT (e.event_time AT TIME ZONE 'UTC')::date AS day, f.code, SUM(e.quantity), SUM(e.billable_delta), COUNT(*) "
    "FROM metering_usageevent e JOIN entitlements_feature f ON f.id = e.feature_id "
    "WHERE e.company_id = %s AND f.product_id = %s AND e.event_time >= %s AND e.event_time < %s {feature} "
    "GROUP BY 1, 2 ORDER BY 1, 2 LIMIT %s"
)


class RawUsageStatsApi(_WithAuth, APIView):
    """Daily usage stats from the raw events: the query /usage/stats would
    run without rollups. Daily grouping and the first page only."""

    def get(self, request):
        from datetime import UTC, datetime

        from companies.selectors import company_id_get_visible
        from config.api.pagination import Page, page_response
        from config.api.schema import validated
        from insights.api.serializers import UsageStatSerializer, UsageStatsQuerySerializer
        from insights.selectors import UsageStat

        query = validated(UsageStatsQuerySerializer, request.query_params)
        product_id = request.auth.product_id
        company_id = company_id_get_visible(
            product_id=product_id, company_id=query.get("company_id"), external_org_id=query.get("external_org_id")
        )
        limit = query["limit"]
        params = [company_id, product_id, query["start"], query["end"]]
        feature = ""
        if query.get("feature_code"):
            feature, params = "AND f.code = %s", [*params, query["feature_code"]]
        with connection.cursor() as cursor:
            cursor.execute(_RAW_STATS_SQL.format(feature=feature), [*params, limit + 1])
            rows = cursor.fetchall()
        items = [
            UsageStat(
                period_start=datetime(day.year, day.month, day.day, tzinfo=UTC),
                feature_code=code, quantity=quantity, billable_quantity=billable, events=events,
            )
            for day, code, quantity, billable, events in rows[:limit]
        ]  # fmt: skip
        return page_response(Page(items=items, has_more=len(rows) > limit, next_cursor=None), UsageStatSerializer)
