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
from config.api.serializers import iso_utc
from entitlements.api.serializers import (
    INHERIT_FIELDS,
    FeatureAccessPatchSerializer,
    FeatureCheckSerializer,
    FeatureExplainSerializer,
    OrgFeatureListSerializer,
    OverrideDeleteSerializer,
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
    inherit = [INHERIT_FIELDS[name] for name in changes.pop("inherit", [])]
    entitlement_services.feature_access_set(
        company=company,
        feature=feature,
        changes=changes,
        actor=Actor.from_request(request),
        reason=reason,
        inherit=inherit,
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


def _delete_override(request, *, company, feature_code: str) -> Response:
    product_id = request.auth.product_id
    feature = entitlement_selectors.feature_get(product_id=product_id, code=feature_code)
    body = validated(OverrideDeleteSerializer, request.data)
    entitlement_services.feature_override_delete(
        company=company, feature=feature, actor=Actor.from_request(request), reason=body["reason"]
    )
    return _check_response(
        selectors.feature_check(product_id=product_id, company_id=company.pk, feature_code=feature.code, require_visible=False)
    )


def _layer_data(layer: dict) -> dict:
    return {**layer, "validFrom": iso_utc(layer["validFrom"]), "validUntil": iso_utc(layer["validUntil"]), "setAt": iso_utc(layer["setAt"])}


def explain_data(explanation) -> dict:
    """The Explain answer (SPEC §4): the check plus layers, tier, usage,
    credits and the rules in the order they were applied."""
    check = explanation.decision.check
    access = explanation.access
    tier = explanation.tier
    return {
        **_check_data(check),
        "layers": [_layer_data(layer) for layer in entitlement_selectors.access_layers(access, at=explanation.at)],
        "tier": (
            {"code": tier.code, "name": tier.name, "via": entitlement_selectors.tier_layer_via(access)}
            if tier is not None and access is not None and access.tier_granted
            else None
        ),
        "usage": {
            "periodStart": iso_utc(check.period_start),
            "resetAt": iso_utc(check.reset_at),
            "currentUsage": check.current_usage,
            "quantityLimit": check.quantity_limit,
            "lastEventAt": iso_utc(explanation.last_event_at),
        },
        "credits": {"available": check.credits_available, "creditCost": check.credit_cost},
        "rules": [{"rule": rule.rule, "passed": rule.passed, "detail": rule.detail} for rule in explanation.decision.rules],
    }


class CompanyFeatureOverrideApi(APIView):
    @extend_schema(
        tags=TAG,
        operation_id="company_feature_override_delete",
        request=OverrideDeleteSerializer,
        summary="Remove the company's override of a feature (the tier layer shows again)",
        responses={200: FeatureCheckSerializer, **ERRORS},
    )
    def delete(self, request, companyId, featureCode):  # noqa: N803
        company = company_get_visible(product_id=request.auth.product_id, company_id=companyId)
        return _delete_override(request, company=company, feature_code=featureCode)


class OrgFeatureOverrideApi(APIView):
    @extend_schema(
        tags=TAG,
        operation_id="org_feature_override_delete",
        request=OverrideDeleteSerializer,
        responses={200: FeatureCheckSerializer, **ERRORS},
    )
    def delete(self, request, externalOrgId, featureCode):  # noqa: N803
        company, _link = company_get_by_external_org(product_id=request.auth.product_id, external_org_id=externalOrgId)
        return _delete_override(request, company=company, feature_code=featureCode)


class CompanyFeatureExplainApi(APIView):
    @extend_schema(
        tags=TAG,
        operation_id="company_feature_explain",
        summary="The check result and how it was decided: layers, tier, usage, credits, rules",
        responses={200: FeatureExplainSerializer, **ERRORS},
    )
    def get(self, request, companyId, featureCode):  # noqa: N803
        product_id = request.auth.product_id
        entitlement_selectors.company_id_visible(product_id=product_id, company_id=companyId)
        return Response(
            explain_data(selectors.feature_explain(product_id=product_id, company_id=companyId, feature_code=featureCode))
        )


class OrgFeatureExplainApi(APIView):
    @extend_schema(
        tags=TAG, operation_id="org_feature_explain", responses={200: FeatureExplainSerializer, **ERRORS}
    )
    def get(self, request, externalOrgId, featureCode):  # noqa: N803
        product_id = request.auth.product_id
        company_id = entitlement_selectors.company_id_for_external_org(product_id=product_id, external_org_id=externalOrgId)
        return Response(
            explain_data(selectors.feature_explain(product_id=product_id, company_id=company_id, feature_code=featureCode))
        )
