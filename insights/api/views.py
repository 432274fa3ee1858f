"""The insights API: parse, call one selector, serialize."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from companies.selectors import company_id_get_visible
from config.api.pagination import page_of, page_response
from config.api.schema import error_responses, validated

from .. import selectors
from .serializers import UsageStatSerializer, UsageStatsQuerySerializer


class UsageStatsApi(APIView):
    @extend_schema(
        operation_id="usage_stats",
        summary="Usage statistics per day, ISO week or month",
        parameters=[UsageStatsQuerySerializer],
        responses={200: page_of(UsageStatSerializer), **error_responses(400, 404)},
        description="A company's usage per period and feature from the daily rollups, oldest first "
        "(list shape, up to 1000 rows a page). `from` inclusive, `to` exclusive; a bound that is not a "
        "UTC midnight counts its whole day.",
    )
    def get(self, request):
        query = validated(UsageStatsQuerySerializer, request.query_params)
        product_id = request.auth.product_id
        company_id = company_id_get_visible(
            product_id=product_id, company_id=query.get("company_id"), external_org_id=query.get("external_org_id")
        )
        page = selectors.usage_stats(
            product_id=product_id,
            company_id=company_id,
            start=query["start"],
            end=query["end"],
            group_by=query["group_by"],
            feature_code=query.get("feature_code"),
            limit=query["limit"],
            cursor=query.get("cursor"),
        )
        return page_response(page, UsageStatSerializer)
