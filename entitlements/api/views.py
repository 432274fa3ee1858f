"""The entitlements API (SPEC §4): thin views that parse, call one
selector/service and serialize. Every lookup is scoped to the API key's
product; anything another product owns is a 404."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.pagination import PageQuerySerializer, page_of, page_response, paginate
from config.api.schema import error_responses, validated

from companies.selectors import company_get_visible

from .. import selectors, services
from companies.actors import Actor
from .serializers import (
    SubscriptionCreateSerializer,
    TierApplyResultSerializer,
    TierApplySerializer,
    TierDetailSerializer,
    TierListItemSerializer,
)

ERRORS = error_responses(400, 404)
# The feature check and set-access endpoints (companies/…/features, orgs/…/features)
# are served by metering (metering/api/checks.py): a check needs live usage.


class TierListApi(APIView):
    @extend_schema(
        tags=["tiers"],
        operation_id="tiers_list",
        summary="The product's active tiers in display order (list shape)",
        parameters=[PageQuerySerializer],
        responses={200: page_of(TierListItemSerializer), **error_responses(400)},
    )
    def get(self, request):
        query = validated(PageQuerySerializer, request.query_params)
        tiers = selectors.tier_list(product_id=request.auth.product_id)
        return page_response(paginate(tiers, limit=query["limit"], cursor=query.get("cursor")), TierListItemSerializer)


class TierDetailApi(APIView):
    @extend_schema(tags=["tiers"], operation_id="tiers_get", summary="A tier with its base fee, features and Stripe prices", responses={200: TierDetailSerializer, **ERRORS})
    def get(self, request, code):
        tier = selectors.tier_get(product_id=request.auth.product_id, code=code)
        return Response(TierDetailSerializer(tier).data)


def _apply(request, *, tier_code: str, data: dict) -> Response:
    product_id = request.auth.product_id
    company = company_get_visible(product_id=product_id, company_id=data["company_id"])
    tier = selectors.tier_get(product_id=product_id, code=tier_code)
    result = services.tier_apply(
        company=company,
        tier=tier,
        overrides=data.get("features") or None,
        actor=Actor.from_request(request),
        reason=data.get("reason") or f"Tier {tier.code} applied through the API",
    )
    return Response(TierApplyResultSerializer(result).data)


class TierApplyApi(APIView):
    @extend_schema(
        tags=["tiers"],
        operation_id="tiers_apply", summary="Apply a tier to a company",
        request=TierApplySerializer,
        responses={200: TierApplyResultSerializer, **error_responses(400, 404, 412, _412="The tier is not active.")},
    )
    def post(self, request, code):
        serializer = TierApplySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return _apply(request, tier_code=code, data=serializer.validated_data)


class SubscriptionCreateApi(APIView):
    @extend_schema(
        tags=["tiers"],
        operation_id="subscriptions_create", summary="Apply a tier to a company (alias of POST /tiers/{code}/apply)",
        description="Alias of POST /tiers/{code}/apply with the tier code in the body.",
        request=SubscriptionCreateSerializer,
        responses={200: TierApplyResultSerializer, **error_responses(400, 404, 412, _412="The tier is not active.")},
    )
    def post(self, request):
        serializer = SubscriptionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return _apply(request, tier_code=serializer.validated_data["tier_code"], data=serializer.validated_data)
