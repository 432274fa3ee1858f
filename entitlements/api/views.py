"""The entitlements API (SPEC §4): thin views that parse, call one
selector/service and serialize. Every lookup is scoped to the API key's
product; anything another product owns is a 404."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.schema import error_responses

from companies.selectors import company_get_by_external_org, company_get_visible

from .. import selectors, services
from ..actors import Actor
from .serializers import (
    FeatureAccessPatchSerializer,
    FeatureCheckSerializer,
    OrgFeatureListSerializer,
    SubscriptionCreateSerializer,
    TierApplyResultSerializer,
    TierApplySerializer,
    TierDetailSerializer,
    TierListItemSerializer,
)

ERRORS = error_responses(400, 404)
TAG = ["features"]


def _check_response(check) -> Response:
    return Response(FeatureCheckSerializer(check).data)


def _patch(request, *, company, feature_code: str) -> Response:
    product_id = request.auth.product_id
    feature = selectors.feature_get(product_id=product_id, code=feature_code)
    serializer = FeatureAccessPatchSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    changes = dict(serializer.validated_data)
    reason = changes.pop("reason", "")
    services.feature_access_set(
        company=company, feature=feature, changes=changes, actor=Actor.from_request(request), reason=reason
    )
    return _check_response(selectors.feature_access_check(company=company, product_id=product_id, feature=feature))


class CompanyFeatureListApi(APIView):
    @extend_schema(tags=TAG, operation_id="company_features_list", responses={200: FeatureCheckSerializer(many=True), **ERRORS})
    def get(self, request, company_id):
        product_id = request.auth.product_id
        selectors.company_id_visible(product_id=product_id, company_id=company_id)
        checks = selectors.feature_checks_for_company(company=company_id, product_id=product_id)
        return Response([FeatureCheckSerializer(check).data for check in checks])


class CompanyFeatureApi(APIView):
    @extend_schema(tags=TAG, operation_id="company_feature_check", responses={200: FeatureCheckSerializer, **ERRORS})
    def get(self, request, company_id, feature_code):
        check = selectors.feature_access_check_visible(
            product_id=request.auth.product_id, company_id=company_id, feature_code=feature_code
        )
        return _check_response(check)

    @extend_schema(
        tags=TAG,
        operation_id="company_feature_set",
        request=FeatureAccessPatchSerializer,
        responses={200: FeatureCheckSerializer, **ERRORS},
    )
    def patch(self, request, company_id, feature_code):
        company = company_get_visible(product_id=request.auth.product_id, company_id=company_id)
        return _patch(request, company=company, feature_code=feature_code)


class OrgFeatureListApi(APIView):
    @extend_schema(tags=TAG, operation_id="org_features_list", responses={200: OrgFeatureListSerializer, **ERRORS})
    def get(self, request, external_org_id):
        product_id = request.auth.product_id
        company_id = selectors.company_id_for_external_org(product_id=product_id, external_org_id=external_org_id)
        checks = selectors.feature_checks_for_company(company=company_id, product_id=product_id)
        return Response({"companyId": str(company_id), "features": [FeatureCheckSerializer(c).data for c in checks]})


class OrgFeatureApi(APIView):
    @extend_schema(tags=TAG, operation_id="org_feature_check", responses={200: FeatureCheckSerializer, **ERRORS})
    def get(self, request, external_org_id, feature_code):
        product_id = request.auth.product_id
        company_id = selectors.company_id_for_external_org(product_id=product_id, external_org_id=external_org_id)
        check = selectors.feature_access_check(company=company_id, product_id=product_id, feature_code=feature_code)
        return _check_response(check)

    @extend_schema(
        tags=TAG,
        operation_id="org_feature_set",
        request=FeatureAccessPatchSerializer,
        responses={200: FeatureCheckSerializer, **ERRORS},
    )
    def patch(self, request, external_org_id, feature_code):
        company, _link = company_get_by_external_org(product_id=request.auth.product_id, external_org_id=external_org_id)
        return _patch(request, company=company, feature_code=feature_code)


class TierListApi(APIView):
    @extend_schema(tags=["tiers"], operation_id="tiers_list", responses={200: TierListItemSerializer(many=True), **error_responses()})
    def get(self, request):
        tiers = selectors.tier_list(product_id=request.auth.product_id)
        return Response(TierListItemSerializer(tiers, many=True).data)


class TierDetailApi(APIView):
    @extend_schema(tags=["tiers"], operation_id="tiers_get", responses={200: TierDetailSerializer, **ERRORS})
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
        operation_id="tiers_apply",
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
        operation_id="subscriptions_create",
        description="Alias of POST /tiers/{code}/apply with the tier code in the body.",
        request=SubscriptionCreateSerializer,
        responses={200: TierApplyResultSerializer, **error_responses(400, 404, 412, _412="The tier is not active.")},
    )
    def post(self, request):
        serializer = SubscriptionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return _apply(request, tier_code=serializer.validated_data["tier_code"], data=serializer.validated_data)
