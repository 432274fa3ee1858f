"""The entitlements API (SPEC §4): thin views that parse, call one
selector/service and serialize. Every lookup is scoped to the API key's
product; anything another product owns is a 404."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.pagination import PageQuerySerializer, page_of, page_response, paginate, paginate_sequence
from config.api.schema import error_responses, validated

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


def _check_data(check) -> dict:
    return FeatureCheckSerializer(check).data


def _check_response(check) -> Response:
    return Response(_check_data(check))


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
    @extend_schema(
        tags=TAG,
        operation_id="company_features_list",
        summary="Check results of all of the product's features for a company (list shape, by feature code)",
        parameters=[PageQuerySerializer],
        responses={200: page_of(FeatureCheckSerializer), **ERRORS},
    )
    def get(self, request, companyId):  # noqa: N803
        product_id = request.auth.product_id
        query = validated(PageQuerySerializer, request.query_params)
        selectors.company_id_visible(product_id=product_id, company_id=companyId)
        checks = selectors.feature_checks_for_company(company=companyId, product_id=product_id)
        page = paginate_sequence(
            checks, key=lambda check: check.feature_code, limit=query["limit"], cursor=query.get("cursor"), name="featureCode"
        )
        return page_response(page, _check_data)


class CompanyFeatureApi(APIView):
    @extend_schema(tags=TAG, operation_id="company_feature_check", summary="Check one feature for a company", responses={200: FeatureCheckSerializer, **ERRORS})
    def get(self, request, companyId, featureCode):  # noqa: N803 - path parameters keep their API names
        check = selectors.feature_access_check_visible(
            product_id=request.auth.product_id, company_id=companyId, feature_code=featureCode
        )
        return _check_response(check)

    @extend_schema(
        tags=TAG,
        operation_id="company_feature_set", summary="Set a company's access to a feature (the override)",
        request=FeatureAccessPatchSerializer,
        responses={200: FeatureCheckSerializer, **ERRORS},
    )
    def patch(self, request, companyId, featureCode):  # noqa: N803
        company = company_get_visible(product_id=request.auth.product_id, company_id=companyId)
        return _patch(request, company=company, feature_code=featureCode)


class OrgFeatureListApi(APIView):
    @extend_schema(tags=TAG, operation_id="org_features_list", summary="Check all features for the company of an external org id", responses={200: OrgFeatureListSerializer, **ERRORS})
    def get(self, request, externalOrgId):  # noqa: N803
        product_id = request.auth.product_id
        company_id = selectors.company_id_for_external_org(product_id=product_id, external_org_id=externalOrgId)
        checks = selectors.feature_checks_for_company(company=company_id, product_id=product_id)
        return Response({"companyId": str(company_id), "features": [FeatureCheckSerializer(c).data for c in checks]})


class OrgFeatureApi(APIView):
    @extend_schema(tags=TAG, operation_id="org_feature_check", summary="Check one feature for the company of an external org id", responses={200: FeatureCheckSerializer, **ERRORS})
    def get(self, request, externalOrgId, featureCode):  # noqa: N803
        product_id = request.auth.product_id
        company_id = selectors.company_id_for_external_org(product_id=product_id, external_org_id=externalOrgId)
        check = selectors.feature_access_check(company=company_id, product_id=product_id, feature_code=featureCode)
        return _check_response(check)

    @extend_schema(
        tags=TAG,
        operation_id="org_feature_set", summary="Set access to a feature by external org id",
        request=FeatureAccessPatchSerializer,
        responses={200: FeatureCheckSerializer, **ERRORS},
    )
    def patch(self, request, externalOrgId, featureCode):  # noqa: N803
        company, _link = company_get_by_external_org(product_id=request.auth.product_id, external_org_id=externalOrgId)
        return _patch(request, company=company, feature_code=featureCode)


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
