"""The usage API: parse, call one service or selector, serialize."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers as drf_serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from companies.selectors import company_id_get_visible
from config.api.envelope import to_application_error
from config.api.pagination import page_of, page_response, paginate
from config.api.schema import error_responses
from companies.actors import Actor

from .. import selectors, services
from ..models import UsageSource
from .serializers import (
    UsageAdjustSerializer,
    UsageEventSerializer,
    UsageHistoryQuerySerializer,
    UsageResultSerializer,
    UsageSetSerializer,
    UsageSnapshotQuerySerializer,
    UsageSnapshotSerializer,
    UsageTrackBatchResponseSerializer,
    UsageTrackBatchSerializer,
    UsageTrackSerializer,
    usage_result_data,
)

REPLAY_HEADER = "Idempotent-Replayed"

_ERRORS = error_responses(400, 404, 409, 412)


def _result_response(result) -> Response:
    response = Response(usage_result_data(result))
    if result.replayed:
        response[REPLAY_HEADER] = "true"
    return response


# One unbound instance validates every track input: building a serializer
# per request (or per batch item) copies its fields each time. Validation
# keeps no state on the instance.
_TRACK_INPUT = UsageTrackSerializer()


class UsageTrackApi(APIView):
    @extend_schema(
        operation_id="usage_track", summary="Track usage of a metered feature (exactly once per idempotency key)",
        request=UsageTrackSerializer,
        responses={200: UsageResultSerializer, **_ERRORS},
        description="Add `quantity` to the company's usage of a metered feature. A repeated `idempotencyKey` "
        "returns the original result with `Idempotent-Replayed: true`.",
    )
    def post(self, request):
        validated = _TRACK_INPUT.run_validation(request.data)
        result = services.usage_track(product_id=request.auth.product_id, actor=Actor.from_request(request), **validated)
        return _result_response(result)


def _error_data(error, request) -> dict:
    """The same error object as the envelope's (SPEC §2), for a batch item."""
    return {
        "code": error.code,
        "message": error.message,
        "httpStatus": error.http_status,
        "details": error.details,
        "requestId": getattr(request, "request_id", "") or "-",
    }


class UsageTrackBatchApi(APIView):
    @extend_schema(
        operation_id="usage_track_batch", summary="Track up to 1000 usage events, each judged on its own",
        request=UsageTrackBatchSerializer,
        responses={200: UsageTrackBatchResponseSerializer, **error_responses(400)},
        description="Track up to 1000 events; each gets `ok`, `duplicate` or `error` (with the error a single "
        "track would answer), in request order.",
    )
    def post(self, request):
        serializer = UsageTrackBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        items = serializer.validated_data["events"]
        results: list[dict | None] = [None] * len(items)
        requests, positions = [], []
        for index, item in enumerate(items):
            try:
                validated = _TRACK_INPUT.run_validation(item)
            except drf_serializers.ValidationError as exc:
                error, _ = to_application_error(drf_serializers.ValidationError(exc.detail))
                results[index] = {"index": index, "status": "error", "error": _error_data(error, request)}
            else:
                requests.append(services.TrackRequest(**validated))
                positions.append(index)
        outcome = services.usage_track_batch(
            product_id=request.auth.product_id, requests=requests, actor=Actor.from_request(request)
        )
        for item_result in outcome:
            index = positions[item_result.index]
            data: dict = {"index": index, "status": item_result.status}
            if item_result.result is not None:
                data["result"] = usage_result_data(item_result.result)
            if item_result.error is not None:
                data["error"] = _error_data(item_result.error, request)
            results[index] = data
        return Response({"results": results})


class UsageSetApi(APIView):
    @extend_schema(
        operation_id="usage_set", summary="Set current-period usage to an absolute value (staff correction)",
        request=UsageSetSerializer,
        responses={200: UsageResultSerializer, **_ERRORS},
        description="Staff correction: set current-period usage to `absoluteValue` (may exceed the limit). "
        "Writes a `set` event and a snapshot.",
    )
    def post(self, request):
        serializer = UsageSetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.usage_set(
            product_id=request.auth.product_id,
            actor=Actor.from_request(request),
            source=UsageSource.API,
            **serializer.validated_data,
        )
        return _result_response(result)


class UsageAdjustApi(APIView):
    @extend_schema(
        operation_id="usage_adjust", summary="Correct usage by a delta (staff correction)",
        request=UsageAdjustSerializer,
        responses={200: UsageResultSerializer, **_ERRORS},
        description="Staff correction by a delta (≠ 0, may be negative); usage never goes below 0 (400).",
    )
    def post(self, request):
        serializer = UsageAdjustSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.usage_adjust(
            product_id=request.auth.product_id,
            actor=Actor.from_request(request),
            source=UsageSource.API,
            **serializer.validated_data,
        )
        return _result_response(result)


def _company_and_feature(request, data) -> tuple:
    product_id = request.auth.product_id
    company_id = company_id_get_visible(
        product_id=product_id, company_id=data.get("company_id"), external_org_id=data.get("external_org_id")
    )
    feature_id = None
    if data.get("feature_code"):
        feature_id = selectors.feature_id_for_code(product_id=product_id, feature_code=data["feature_code"])
    return company_id, feature_id


class UsageHistoryApi(APIView):
    @extend_schema(
        operation_id="usage_history", summary="A company's usage events, newest first (list shape)",
        parameters=[UsageHistoryQuerySerializer],
        responses={200: page_of(UsageEventSerializer), **error_responses(400, 404)},
        description="Usage events, newest first (list shape; limit default 50, max 500).",
    )
    def get(self, request):
        query = UsageHistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        company_id, feature_id = _company_and_feature(request, data)
        events = selectors.usage_history_list(
            product_id=request.auth.product_id,
            company_id=company_id,
            feature_id=feature_id,
            event_type=data.get("event_type"),
            include_delivered=data["include_delivered"],
        )
        return page_response(paginate(events, limit=data["limit"], cursor=data.get("cursor")), UsageEventSerializer)


class UsageSnapshotsApi(APIView):
    @extend_schema(
        operation_id="usage_snapshots", summary="A company's usage snapshots, newest first (list shape)",
        parameters=[UsageSnapshotQuerySerializer],
        responses={200: page_of(UsageSnapshotSerializer), **error_responses(400, 404)},
        description="Usage snapshots (`set`, `period_close`, …), newest first (list shape).",
    )
    def get(self, request):
        query = UsageSnapshotQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        company_id, feature_id = _company_and_feature(request, data)
        snapshots = selectors.usage_snapshot_list(
            product_id=request.auth.product_id, company_id=company_id, feature_id=feature_id
        )
        return page_response(paginate(snapshots, limit=data["limit"], cursor=data.get("cursor")), UsageSnapshotSerializer)

