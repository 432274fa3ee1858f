"""The billing API (SPEC §6): parse, call one service or selector, serialize.
Product-scoped through the calling key (`request.auth`)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.schema import error_responses, validated
from companies.actors import Actor

from ..selectors import billing_status
from ..services.onboarding import onboard
from ..services.subscriptions import checkout_claim, subscription_link
from .serializers import (
    BillingStatusSerializer,
    CheckoutClaimInputSerializer,
    CheckoutClaimResultSerializer,
    OnboardInputSerializer,
    OnboardResultSerializer,
    SubscriptionLinkInputSerializer,
    SubscriptionLinkResultSerializer,
)

TAGS = ["billing"]


class CheckoutClaimApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_claim_checkout",
        summary="Claim a completed Stripe checkout session for a company",
        request=CheckoutClaimInputSerializer,
        responses={
            201: OpenApiResponse(CheckoutClaimResultSerializer, description="Claimed now (a subscription was made)."),
            200: OpenApiResponse(CheckoutClaimResultSerializer, description="Already claimed by this company: nothing changed."),
            **error_responses(400, 404, 409, 503, _409="Already claimed or linked by another company.", _400="Invalid input, or the Stripe object is unknown, expired or incomplete.")},
    )
    def post(self, request):
        data = validated(CheckoutClaimInputSerializer, request.data)
        result = checkout_claim(product_id=request.auth.product_id, actor=Actor.from_request(request), **data)
        return Response(CheckoutClaimResultSerializer(result).data, status=200 if result.already_claimed else 201)


class SubscriptionLinkApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_link_subscription",
        summary="Link an existing Stripe subscription to a company",
        request=SubscriptionLinkInputSerializer,
        responses={
            201: OpenApiResponse(SubscriptionLinkResultSerializer, description="Linked now."),
            200: OpenApiResponse(SubscriptionLinkResultSerializer, description="Already linked to this company: nothing changed."),
            **error_responses(400, 404, 409, 503, _409="Already claimed or linked by another company.", _400="Invalid input, or the Stripe object is unknown, expired or incomplete.")},
    )
    def post(self, request):
        data = validated(SubscriptionLinkInputSerializer, request.data)
        result = subscription_link(product_id=request.auth.product_id, actor=Actor.from_request(request), **data)
        return Response(SubscriptionLinkResultSerializer(result).data, status=200 if result.already_linked else 201)


class BillingStatusApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_status",
        summary="Billing profile, active subscriptions and enabled features of a company",
        parameters=[OpenApiParameter("companyId", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: BillingStatusSerializer, **error_responses(404)},
    )
    def get(self, request, companyId):  # noqa: N803 - the path parameter's API name
        status = billing_status(product_id=request.auth.product_id, company_id=companyId)
        return Response(BillingStatusSerializer(status).data)


class OnboardApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="onboard",
        summary="Onboard an organisation in one call (match or create, link, subscription or tier, contact)",
        request=OnboardInputSerializer,
        responses={
            201: OpenApiResponse(OnboardResultSerializer, description="Linked or created now (linkStatus linked or created)."),
            200: OpenApiResponse(OnboardResultSerializer, description="Already linked (linkStatus already_linked)."),
            **error_responses(400, 404, 409, 503, _409="Already claimed or linked by another company.", _400="Invalid input, or the Stripe object is unknown, expired or incomplete.")},
    )
    def post(self, request):
        data = validated(OnboardInputSerializer, request.data)
        result = onboard(
            product_id=request.auth.product_id,
            **data,
            actor=Actor.from_request(request),
        )
        return Response(OnboardResultSerializer(result).data, status=201 if result.created else 200)
