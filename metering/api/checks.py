"""The feature check endpoints of SPEC §4, served by metering because a
check of a metered feature needs live usage, which only metering knows
(SPEC §1 (c)); the access data and the decision come from entitlements.
PATCH writes through `entitlements.services` and answers with the check."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from companies.selectors import company_get_by_external_org, company_get_visible
from config.api.pagination import PageQuerySerializer, page_of, page_response, paginate_sequence
from config.api.schema import error_responses, validated
from entitlements import selectors as entitlement_selectors
from entitlements import services as entitlement_services
from companies.actors import Actor
from entitlements.api.serializers import (
    FeatureAccessPatchSerializer,
    FeatureCheckSerializer,
    OrgFeatureListSerializer,
)

from .. import selectors

ERRORS = error_responses(400, 404)
TAG = ["features"]


def _check_data(check) -> dict:
    return FeatureCheckSerializer(check).data


def _check_response(check) -> Response:
    return Response(_check_data(check))


def _patch(request, *, company, feature_code: str) -> Response:
    product_id = request.auth.product_id
    feature = entitlement_selectors.feature_get(product_id=product_id, code=feature_code)
    serializer = FeatureAccessPatchSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    changes = dict(serializer.validated_data)
    reason = changes.pop("reason", "")
    entitlement_services.feature_access_set(
        company=company, feature=feature, changes=changes, actor=Actor.from_request(request), reason=reason
    )
    return _check_response(
        selectors.feature_check(
            product_id=product_id, company_id=company.pk, feature_code=feature.code, require_visible=False
        )
    )


class CompanyFeatureListApi(APIView):
    @extend_schema(
        tags=TAG,
        operation_id="company_features_list",
        summary="Check results of all of the product's features for a company (list shape, by feature code)",
        parameters=[PageQuerySerializer],
        responses={200: page_of(FeatureCheckSerializer), **ERRORS},
    )
    def get(self, request, companyId):  # noqa: N803 - path parameters keep their API names
        product_id = request.auth.product_id
        query = validated(PageQuerySerializer, request.query_params)
        entitlement_selectors.company_id_visible(product_id=product_id, company_id=companyId)
        checks = selectors.feature_checks(product_id=product_id, company_id=companyId)
        page = paginate_sequence(
            checks, key=lambda check: check.feature_code, limit=query["limit"], cursor=query.get("cursor"), name="featureCode"
        )
        return page_response(page, _check_data)


class CompanyFeatureApi(APIView):
    @extend_schema(tags=TAG, operation_id="company_feature_check", summary="Check one feature for a company", responses={200: FeatureCheckSerializer, **ERRORS})
    def get(self, request, companyId, featureCode):  # noqa: N803
        check = selectors.feature_check(product_id=request.auth.product_id, company_id=companyId, feature_code=featureCode)
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
        company_id = entitlement_selectors.company_id_for_external_org(
            product_id=product_id, external_org_id=externalOrgId
        )
        checks = selectors.feature_checks(product_id=product_id, company_id=company_id)
        return Response({"companyId": str(company_id), "features": [FeatureCheckSerializer(c).data for c in checks]})


class OrgFeatureApi(APIView):
    @extend_schema(tags=TAG, operation_id="org_feature_check", summary="Check one feature for the company of an external org id", responses={200: FeatureCheckSerializer, **ERRORS})
    def get(self, request, externalOrgId, featureCode):  # noqa: N803
        product_id = request.auth.product_id
        company_id = entitlement_selectors.company_id_for_external_org(
            product_id=product_id, external_org_id=externalOrgId
        )
        check = selectors.feature_check(
            product_id=product_id, company_id=company_id, feature_code=featureCode, require_visible=False
        )
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
