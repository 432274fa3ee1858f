"""The floor of bench/track.py: the least a track endpoint can do under the
same stack (gunicorn, Django, DRF parsing and rendering, PostgreSQL) — one
conditional counter UPDATE … RETURNING and one event INSERT in a
transaction, with no auth, no validation beyond int(), no idempotency check
and no period logic. Served only by metering.bench_urls (the benchmark's URL
conf), never by config.urls."""

from __future__ import annotations

import uuid

from django.db import connection, transaction
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.views import APIView

_UPDATE = (
    "UPDATE metering_usagemeter SET value = value + %s "
    "WHERE id = %s AND value + %s <= 9223372036854775807 RETURNING value"
)
_INSERT = (
    "INSERT INTO metering_usageevent (id, product_id, company_id, feature_id, meter_id, event_type, quantity, "
    "previous_value, new_value, quantity_limit, included_quantity, billable_delta, idempotency_key, "
    "request_fingerprint, event_time, created_at, source, performed_by, actor_kind, actor_id, actor_label, "
    "adjustment_reason, metadata, stripe_delivery_status, stripe_event_identifier, stripe_delivery_error, "
    "stripe_delivery_attempts) VALUES (%s, %s, %s, %s, %s, 'increment', %s, %s, %s, NULL, 0, 0, %s, '', %s, %s, "
    "'api', '', '', '', '', '', '{}', 'not_applicable', %s, '', 0)"
)


class FloorTrackApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def post(self, request):
        data = request.data
        quantity = int(data.get("quantity", 1))
        now = timezone.now()
        event_id = uuid.uuid4()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_UPDATE, [quantity, data["meterId"], quantity])
            (value,) = cursor.fetchone()
            cursor.execute(
                _INSERT,
                [
                    event_id, data["productId"], data["companyId"], data["featureId"], data["meterId"], quantity,
                    value - quantity, value, data.get("idempotencyKey"), now, now, str(event_id),
                ],
            )
        return Response({"currentUsage": value, "eventId": str(event_id)})


class FloorTrackWithAuthApi(FloorTrackApi):
    """The same floor behind the API's key authentication, permission and
    rate limit — what every product call pays before any usage logic."""

    authentication_classes = APIView.authentication_classes
    permission_classes = APIView.permission_classes
    throttle_classes = APIView.throttle_classes
