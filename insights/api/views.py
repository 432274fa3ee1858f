"""The insights API: parse, call one selector, serialize."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from companies.models import Product
from companies.selectors import company_id_get_visible
from companies.api.serializers import CompanySerializer
from config.api.pagination import PageQuerySerializer, page_of, page_response, paginate
from config.api.schema import error_responses, validated

from .. import selectors
from .serializers import (
    HealthSerializer,
    RevenueQuerySerializer,
    RevenueSerializer,
    SegmentSerializer,
    UsageStatSerializer,
    UsageStatsQuerySerializer,
)


class UsageStatsApi(APIView):
    @extend_schema(
        operation_id="usage_stats",
        summary="Usage statistics per hour, day, ISO week or month, optionally by dimension",
        parameters=[UsageStatsQuerySerializer],
        responses={200: page_of(UsageStatSerializer), **error_responses(400, 404)},
        description="A company's usage per period and feature from the rollups, oldest first "
        "(list shape, up to 1000 rows a page). `from` inclusive, `to` exclusive; a bound that is not a "
        "UTC midnight (with `groupBy=hour`: a whole hour) counts its whole day (hour). `groupBy=hour` "
        "covers the last 35 days. With `dimension` (and `featureCode`), a row per value of that metadata key.",
    )
    def get(self, request):
        query = validated(UsageStatsQuerySerializer, request.query_params)
        product_id = request.auth.product_id
        company_id = company_id_get_visible(product_id=product_id, company_id=query["company_id"])
        page = selectors.usage_stats(
            product_id=product_id,
            company_id=company_id,
            start=query["start"],
            end=query["end"],
            group_by=query["group_by"],
            feature_code=query.get("feature_code"),
            dimension=query.get("dimension"),
            limit=query["limit"],
            cursor=query.get("cursor"),
        )
        return page_response(page, UsageStatSerializer)


class RevenueApi(APIView):
    @extend_schema(
        operation_id="insights_revenue",
        summary="MRR, its movements, customers, churn and ARPU per period",
        parameters=[RevenueQuerySerializer],
        responses={200: RevenueSerializer, **error_responses(400)},
        description="Per day, ISO week or month of [from, to), for the key's product, from the daily revenue "
        "snapshots. Movements sum to the change from the previous period's closing MRR.",
    )
    def get(self, request):
        query = validated(RevenueQuerySerializer, request.query_params)
        product_id = request.auth.product_id
        periods = selectors.revenue_periods(
            product_id=product_id, start=query["start"], end=query["end"], interval=query["interval"]
        )
        currency = Product.objects.values_list("currency", flat=True).get(pk=product_id)
        return Response(RevenueSerializer({"currency": currency, "periods": periods}).data)


class CompanyHealthApi(APIView):
    @extend_schema(
        operation_id="company_health",
        parameters=[OpenApiParameter("companyId", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Company UUID")],
        summary="A company's health score, its explained components and history",
        responses={200: HealthSerializer, **error_responses(404)},
        description="The health of the company's account with the key's product (SPEC §8): `score` 0–100, "
        "`riskLevel`, the weighted components each explained in one sentence, when it was computed (nightly, "
        "or now if never), and one score per day over the last year.",
    )
    def get(self, request, companyId: str):
        detail = selectors.account_health_detail(product_id=request.auth.product_id, company_id=companyId)
        return Response(HealthSerializer(detail).data)


class SegmentListApi(APIView):
    @extend_schema(
        operation_id="segments_list",
        summary="The product's segments with their members' numbers",
        parameters=[PageQuerySerializer],
        responses={200: page_of(SegmentSerializer), **error_responses(400)},
        description="By slug (list shape). Counts, MRR and churn are those of the last sync "
        "(`lastSyncedAt`; the `sync_segments` job).",
    )
    def get(self, request):
        query = validated(PageQuerySerializer, request.query_params)
        segments = selectors.segment_list(product_id=request.auth.product_id)
        return page_response(paginate(segments, limit=query["limit"], cursor=query.get("cursor")), SegmentSerializer)


class SegmentCompaniesApi(APIView):
    @extend_schema(
        operation_id="segments_companies",
        summary="The member companies of a segment",
        parameters=[
            PageQuerySerializer,
            OpenApiParameter("slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The segment's slug."),
        ],
        responses={200: page_of(CompanySerializer), **error_responses(400, 404)},
        description="The companies in the segment at its last sync, by name (list shape), as `GET /companies` shows them.",
    )
    def get(self, request, slug: str):
        query = validated(PageQuerySerializer, request.query_params)
        segment = selectors.segment_get(product_id=request.auth.product_id, slug=slug)
        companies = selectors.segment_companies(segment=segment)
        return page_response(paginate(companies, limit=query["limit"], cursor=query.get("cursor")), CompanySerializer)
