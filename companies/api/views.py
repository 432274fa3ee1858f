"""The companies API (SPEC §3): parse, call one service or selector, serialize.

Every operation is scoped to the calling key's product (`request.auth`)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.pagination import page_of, page_response, paginate
from config.api.schema import error_responses, validated

from .. import selectors, services
from ..services import UNSET
from .serializers import (
    ByProductLinkQuerySerializer,
    CompanyCreateInputSerializer,
    CompanyListQuerySerializer,
    CompanySerializer,
    CompanyUpdateInputSerializer,
    CompanyWithLinkSerializer,
    ContactListQuerySerializer,
    ContactSerializer,
    ContactsBulkResultSerializer,
    ContactsBulkUpsertInputSerializer,
    ContactUpsertInputSerializer,
    ContactUpsertResultSerializer,
    LinkCreateInputSerializer,
    LinksResetInputSerializer,
    LinksResetResultSerializer,
    ProductLinkSerializer,
    SmartLinkInputSerializer,
    SmartLinkResultSerializer,
)

TAGS = ["companies"]


def _company_id_parameter() -> OpenApiParameter:
    return OpenApiParameter("companyId", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Company UUID")


class CompanyListCreateApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="companies_list",
        summary="The product's companies (list shape), optionally searched with q",
        parameters=[CompanyListQuerySerializer],
        responses={200: page_of(CompanySerializer), **error_responses(400)},
    )
    def get(self, request):
        query = validated(CompanyListQuerySerializer, request.query_params)
        companies = selectors.company_list(product_id=request.auth.product_id, q=query.get("q"))
        return page_response(paginate(companies, limit=query["limit"], cursor=query.get("cursor")), CompanySerializer)

    @extend_schema(
        tags=TAGS,
        operation_id="companies_create",
        summary="Create a company linked to this product (with its contact)",
        request=CompanyCreateInputSerializer,
        responses={201: CompanySerializer, **error_responses(400, 409, _409="Already linked elsewhere in this product.")},
    )
    def post(self, request):
        data = validated(CompanyCreateInputSerializer, request.data)
        base, profile = CompanyCreateInputSerializer.split_profile(data)
        company = services.company_create(product_id=request.auth.product_id, **base, profile=profile)
        company = selectors.company_with_account(company=company, product_id=request.auth.product_id)
        return Response(CompanySerializer(company).data, status=status.HTTP_201_CREATED)


class CompanyByProductLinkApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="companies_by_product_link",
        summary="Find the company linked to an external org id of this product",
        parameters=[ByProductLinkQuerySerializer],
        responses={200: CompanyWithLinkSerializer, **error_responses(400, 404)},
    )
    def get(self, request):
        query = validated(ByProductLinkQuerySerializer, request.query_params)
        company, link = selectors.company_get_by_external_org(product_id=request.auth.product_id, **query)
        company = selectors.company_with_account(company=company, product_id=request.auth.product_id)
        company.link = link
        return Response(CompanyWithLinkSerializer(company).data)


class CompanyDetailApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="companies_retrieve",
        summary="Get a company",
        parameters=[_company_id_parameter()],
        responses={200: CompanySerializer, **error_responses(404)},
    )
    def get(self, request, companyId: str):
        company = selectors.company_get_visible(product_id=request.auth.product_id, company_id=companyId)
        company = selectors.company_with_account(company=company, product_id=request.auth.product_id)
        return Response(CompanySerializer(company).data)

    @extend_schema(
        tags=TAGS,
        operation_id="companies_update",
        summary="Update a company (name, domain, backfilled createdAt, metadata merge, profile and billing fields)",
        parameters=[_company_id_parameter()],
        request=CompanyUpdateInputSerializer,
        responses={200: CompanySerializer, **error_responses(400, 404)},
    )
    def patch(self, request, companyId: str):
        company = selectors.company_get_visible(product_id=request.auth.product_id, company_id=companyId)
        data = validated(CompanyUpdateInputSerializer, request.data)
        # Absent fields stay UNSET (the service's defaults).
        base, profile = CompanyUpdateInputSerializer.split_profile(data)
        company = services.company_update(company=company, product_id=request.auth.product_id, **base, profile=profile)
        company = selectors.company_with_account(company=company, product_id=request.auth.product_id)
        return Response(CompanySerializer(company).data)


class CompanySmartLinkApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="companies_smart_link",
        summary="Find the existing customer for an external org from hints, and link it",
        description=(
            "status: already_linked | linked | suggestions | no_match. Scores 0–100: same domain 95, "
            "name up to 80 (legal suffixes ignored), email domain 70 (free-mail never). Links only a "
            "clear winner: at or above minConfidence × 100 and ≥ 10 points ahead of the runner-up."
        ),
        request=SmartLinkInputSerializer,
        responses={
            201: OpenApiResponse(SmartLinkResultSerializer, description="status linked: a link was made now."),
            200: OpenApiResponse(SmartLinkResultSerializer, description="already_linked, suggestions or no_match."),
            **error_responses(400),
        },
    )
    def post(self, request):
        data = validated(SmartLinkInputSerializer, request.data)
        hints = data.pop("hints", None) or {}
        result = services.company_smart_link(product_id=request.auth.product_id, **data, **hints)
        created = result.status == services.SmartLinkStatus.LINKED
        return Response(SmartLinkResultSerializer(result).data, status=201 if created else 200)


class ContactUpsertApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="contacts_upsert",
        summary="Create or update a contact (by company and email)",
        request=ContactUpsertInputSerializer,
        responses={
            200: OpenApiResponse(ContactUpsertResultSerializer, description="Updated (isNew false)"),
            201: OpenApiResponse(ContactUpsertResultSerializer, description="Created (isNew true)"),
            **error_responses(400, 404),
        },
    )
    def post(self, request):
        data = validated(ContactUpsertInputSerializer, request.data)
        company = selectors.company_get_visible(product_id=request.auth.product_id, company_id=data.pop("company_id"))
        contact, created = services.contact_upsert(company=company, **data)
        contact.is_new = created
        return Response(
            ContactUpsertResultSerializer(contact).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ContactsBulkUpsertApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="contacts_bulk_upsert",
        summary="Create or update up to 1000 contacts of one company, all or nothing",
        request=ContactsBulkUpsertInputSerializer,
        responses={
            201: OpenApiResponse(ContactsBulkResultSerializer, description="At least one contact was created."),
            200: OpenApiResponse(ContactsBulkResultSerializer, description="Only updates (or an empty list)."),
            **error_responses(400, 404),
        },
    )
    def post(self, request):
        data = validated(ContactsBulkUpsertInputSerializer, request.data)
        company = selectors.company_get_visible(product_id=request.auth.product_id, company_id=data["company_id"])
        result = services.contacts_bulk_upsert(company=company, contacts=data["contacts"])
        body = {
            "created": result.created,
            "updated": result.updated,
            "contacts": [
                {"id": contact.pk, "email": contact.email, "isNew": is_new} for contact, is_new in result.contacts
            ],
        }
        return Response(ContactsBulkResultSerializer(body).data, status=201 if result.created else 200)


class CompanyContactsApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="contacts_list",
        summary="A company's contacts, primary first (list shape)",
        parameters=[_company_id_parameter(), ContactListQuerySerializer],
        responses={200: page_of(ContactSerializer), **error_responses(400, 404)},
    )
    def get(self, request, companyId: str):
        company = selectors.company_get_visible(product_id=request.auth.product_id, company_id=companyId)
        query = validated(ContactListQuerySerializer, request.query_params)
        contacts = selectors.contact_list(company=company, primary_only=query.get("primaryOnly") in ("true", "1"))
        return page_response(paginate(contacts, limit=query["limit"], cursor=query.get("cursor")), ContactSerializer)


class LinkCreateApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="links_create",
        summary="Link another external org id of this product to a company",
        description="201 when created; 200 with the existing link when it already points at this company.",
        request=LinkCreateInputSerializer,
        responses={201: ProductLinkSerializer, 200: ProductLinkSerializer, **error_responses(400, 404, 409, _409="Already linked elsewhere in this product.")},
    )
    def post(self, request):
        data = validated(LinkCreateInputSerializer, request.data)
        company = selectors.company_get_visible(product_id=request.auth.product_id, company_id=data.pop("company_id"))
        link, created = services.product_link_create(product_id=request.auth.product_id, company=company, **data)
        return Response(
            ProductLinkSerializer(link).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class LinksResetApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="links_reset",
        summary="Delete all links of this product",
        description=(
            "Only this product's links. deleteContacts applies to the companies that were linked to this "
            "product only; resetMrr to this product's accounts; companies themselves are kept."
        ),
        request=LinksResetInputSerializer,
        responses={200: LinksResetResultSerializer, **error_responses(400)},
    )
    def post(self, request):
        data = validated(LinksResetInputSerializer, request.data)
        result = services.product_links_reset(product_id=request.auth.product_id, **data)
        return Response(LinksResetResultSerializer(result).data)
