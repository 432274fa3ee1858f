"""The notifications API (SPEC §11): webhook endpoints and the event feed.
Every operation is scoped to the calling key's product; another product's
endpoint or event is a 404."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from companies.models import Product
from config.api.pagination import page_of, page_response, paginate
from config.api.schema import error_responses, validated

from .. import selectors, services
from ..services.endpoints import UNSET
from .serializers import (
    EndpointCreateInputSerializer,
    EndpointDeletedSerializer,
    EndpointListQuerySerializer,
    EndpointSerializer,
    EndpointUpdateInputSerializer,
    EndpointWithSecretSerializer,
    EventListQuerySerializer,
    EventSerializer,
)

TAGS = ["notifications"]


def _endpoint_id_parameter() -> OpenApiParameter:
    return OpenApiParameter("endpointId", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Endpoint id")


class EndpointListCreateApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="webhook_endpoints_list",
        summary="List this product's webhook endpoints",
        parameters=[EndpointListQuerySerializer],
        responses={200: page_of(EndpointSerializer), **error_responses(400)},
    )
    def get(self, request):
        query = validated(EndpointListQuerySerializer, request.query_params)
        endpoints = selectors.endpoint_list(product_id=request.auth.product_id)
        return page_response(paginate(endpoints, limit=query["limit"], cursor=query.get("cursor")), EndpointSerializer)

    @extend_schema(
        tags=TAGS,
        operation_id="webhook_endpoints_create",
        summary="Register a webhook endpoint (the signing secret is in this answer only)",
        request=EndpointCreateInputSerializer,
        responses={201: EndpointWithSecretSerializer, **error_responses(400)},
    )
    def post(self, request):
        data = validated(EndpointCreateInputSerializer, request.data)
        endpoint = services.endpoint_create(
            product=Product(pk=request.auth.product_id),
            url=data["url"],
            event_types=data.get("eventTypes") or [],
            description=data.get("description") or "",
        )
        return Response(EndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="webhook_endpoints_retrieve",
        summary="Get a webhook endpoint (without its secret)",
        parameters=[_endpoint_id_parameter()],
        responses={200: EndpointSerializer, **error_responses(404)},
    )
    def get(self, request, endpointId: str):
        endpoint = selectors.endpoint_get(product_id=request.auth.product_id, endpoint_id=endpointId)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(
        tags=TAGS,
        operation_id="webhook_endpoints_update",
        summary="Change a webhook endpoint's url, event types or enabled flag",
        parameters=[_endpoint_id_parameter()],
        request=EndpointUpdateInputSerializer,
        responses={200: EndpointSerializer, **error_responses(400, 404)},
    )
    def patch(self, request, endpointId: str):
        endpoint = selectors.endpoint_get(product_id=request.auth.product_id, endpoint_id=endpointId)
        data = validated(EndpointUpdateInputSerializer, request.data)
        endpoint = services.endpoint_update(
            endpoint=endpoint,
            url=data.get("url", UNSET),
            event_types=data.get("eventTypes", UNSET),
            enabled=data.get("enabled", UNSET),
            description=data.get("description", UNSET),
        )
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(
        tags=TAGS,
        operation_id="webhook_endpoints_delete",
        summary="Delete a webhook endpoint (its pending deliveries are dropped)",
        parameters=[_endpoint_id_parameter()],
        responses={200: EndpointDeletedSerializer, **error_responses(404)},
    )
    def delete(self, request, endpointId: str):
        endpoint = selectors.endpoint_get(product_id=request.auth.product_id, endpoint_id=endpointId)
        endpoint_id = endpoint.pk
        services.endpoint_delete(endpoint=endpoint)
        return Response({"id": str(endpoint_id), "deleted": True})


class EventListApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="events_list",
        summary="Page through this product's events, oldest first",
        parameters=[EventListQuerySerializer],
        responses={
            200: page_of(EventSerializer),
            **error_responses(400, 404, _404="`after` names no event of this product."),
        },
    )
    def get(self, request):
        query = validated(EventListQuerySerializer, request.query_params)
        events = selectors.event_list(
            product_id=request.auth.product_id, type=query.get("type"), after=query.get("after")
        )
        return page_response(paginate(events, limit=query["limit"], cursor=query.get("cursor")), EventSerializer)
