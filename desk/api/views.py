"""The desk API: `POST /companies/{companyId}/merge` (SPEC §3), for the
products' own dedupe jobs. Parse, call desk.services.company_merge, answer."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from companies.actors import Actor
from config.api.schema import error_responses, validated

from ..services import company_merge
from .serializers import CompanyMergeInputSerializer, CompanyMergeResultSerializer


class CompanyMergeApi(APIView):
    @extend_schema(
        tags=["companies"],
        operation_id="companies_merge",
        summary="Merge a duplicate company into the one that stays",
        description=(
            "Moves contacts (deduplicated by email; the kept primary wins), product links (linkType merged), "
            "access overrides the kept company lacks, usage (meters summed per period, events re-pointed), "
            "credit wallets (a transfer pair on both ledgers), subscriptions and billing profiles, and history, "
            "in one transaction. The duplicate stays as a tombstone: reads by its id answer the kept company, "
            "writes are 409 with `details.keptCompanyId`. Both companies must be visible to the key. Running it "
            "again answers the same result and changes nothing."
        ),
        parameters=[OpenApiParameter("companyId", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The duplicate")],
        request=CompanyMergeInputSerializer,
        responses={
            200: OpenApiResponse(CompanyMergeResultSerializer, description="Merged now, or the first merge's answer."),
            **error_responses(
                400, 404, 409,
                _409=(
                    "The kept company is itself merged, the duplicate was merged into another company, both are "
                    "Stripe customers of one product, a wallet of the duplicate is frozen or holds reservations, "
                    "or its account is suspended while the kept one's is not."
                ),
            ),
        },
    )
    def post(self, request, companyId: str):
        data = validated(CompanyMergeInputSerializer, request.data)
        result = company_merge(
            source=companyId,
            target=data["into_company_id"],
            reason=data["reason"],
            actor=Actor.from_request(request),
            product_id=request.auth.product_id,
        )
        return Response(CompanyMergeResultSerializer(result).data)
