"""The billing API (SPEC §6): parse, call one service or selector, serialize.
Product-scoped through the calling key (`request.auth`)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from companies.actors import Actor
from config.api.pagination import PageQuerySerializer, page_of, page_response, paginate, paginate_sequence
from config.api.schema import IDEMPOTENCY_KEY_MAX, error_responses, idempotency_key_header, validated
from config.errors import BadRequest

from ..selectors import billing_status, invoice_get_visible, invoices_list, purchases_list, subscription_get_visible, subscriptions_list
from ..services.customers import (
    payment_method_detach,
    payment_method_set_default,
    payment_methods_list,
    setup_intent_create,
    stripe_customer_ensure,
)
from ..services.onboarding import onboard
from ..services.purchases import purchase_create
from ..services.statements import estimate_build, statement_build, statement_csv, statement_html, statement_send
from ..services.subscription_lifecycle import (
    subscription_cancel,
    subscription_change,
    subscription_create,
    subscription_resume,
)
from ..services.subscriptions import checkout_claim, subscription_link
from .serializers import (
    EstimateInputSerializer,
    EstimateSerializer,
    BillingStatusSerializer,
    CompanyIdInputSerializer,
    CompanyIdQuerySerializer,
    CustomerEnsureInputSerializer,
    CustomerEnsureResultSerializer,
    PaymentMethodDefaultInputSerializer,
    InvoiceDetailSerializer,
    InvoiceSerializer,
    InvoicesListQuerySerializer,
    PaymentMethodSerializer,
    StatementQuerySerializer,
    StatementSendInputSerializer,
    StatementSentSerializer,
    StatementSerializer,
    PurchaseCreateInputSerializer,
    PurchaseCreateResultSerializer,
    PurchaseSerializer,
    SetupIntentResultSerializer,
    SubscriptionCancelInputSerializer,
    SubscriptionChangeInputSerializer,
    SubscriptionCreateInputSerializer,
    SubscriptionSerializer,
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


# --- customers and cards -------------------------------------------------------------------

COMPANY_ID_QUERY = OpenApiParameter("companyId", OpenApiTypes.UUID, OpenApiParameter.QUERY, required=True)
_402 = "The card was declined: details.declineCode is Stripe's decline code (e.g. insufficient_funds)."


class CustomerEnsureApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_customers_create",
        summary="Create the company's Stripe customer for this product, or return the existing one",
        request=CustomerEnsureInputSerializer,
        responses={201: CustomerEnsureResultSerializer, 200: CustomerEnsureResultSerializer, **error_responses(400, 404, 409, 503)},
    )
    def post(self, request):
        data = validated(CustomerEnsureInputSerializer, request.data)
        result = stripe_customer_ensure(
            product_id=request.auth.product_id,
            company_id=data["companyId"],
            email=data.get("email") or None,
            name=data.get("name") or None,
            actor=Actor.from_request(request),
        )
        return Response(CustomerEnsureResultSerializer(result).data, status=201 if result.created else 200)


class SetupIntentCreateApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_setup_intents_create",
        summary="A SetupIntent to collect a card in the product's page (creates the Stripe customer if needed)",
        request=CompanyIdInputSerializer,
        responses={201: SetupIntentResultSerializer, **error_responses(400, 404, 409, 503)},
    )
    def post(self, request):
        data = validated(CompanyIdInputSerializer, request.data)
        result = setup_intent_create(
            product_id=request.auth.product_id, company_id=data["companyId"], actor=Actor.from_request(request)
        )
        return Response(SetupIntentResultSerializer(result).data, status=201)


class PaymentMethodsListQuerySerializer(PageQuerySerializer):
    companyId = serializers.UUIDField()


class PaymentMethodListApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_payment_methods_list",
        summary="The company's saved cards, the default one flagged",
        parameters=[PaymentMethodsListQuerySerializer],
        responses={200: page_of(PaymentMethodSerializer), **error_responses(400, 404, 503)},
    )
    def get(self, request):
        query = validated(PaymentMethodsListQuerySerializer, request.query_params)
        methods = payment_methods_list(product_id=request.auth.product_id, company_id=query["companyId"])
        page = paginate_sequence(methods, key=lambda method: method.id, limit=query["limit"], cursor=query.get("cursor"))
        return page_response(page, PaymentMethodSerializer)


class PaymentMethodDefaultApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_payment_methods_set_default",
        summary="Make a saved card the company's default for invoices and renewals",
        request=PaymentMethodDefaultInputSerializer,
        responses={200: PaymentMethodSerializer, **error_responses(400, 402, 404, 503, _402=_402)},
    )
    def post(self, request):
        data = validated(PaymentMethodDefaultInputSerializer, request.data)
        method = payment_method_set_default(
            product_id=request.auth.product_id,
            company_id=data["companyId"],
            payment_method_id=data["paymentMethodId"],
            actor=Actor.from_request(request),
        )
        return Response(PaymentMethodSerializer(method).data)


class PaymentMethodDetachApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_payment_methods_detach",
        summary="Remove a saved card from the company",
        parameters=[OpenApiParameter("paymentMethodId", OpenApiTypes.STR, OpenApiParameter.PATH), COMPANY_ID_QUERY],
        responses={204: None, **error_responses(400, 404, 503)},
    )
    def delete(self, request, paymentMethodId):  # noqa: N803 - the path parameter's API name
        query = validated(CompanyIdQuerySerializer, request.query_params)
        payment_method_detach(
            product_id=request.auth.product_id,
            company_id=query["companyId"],
            payment_method_id=paymentMethodId,
            actor=Actor.from_request(request),
        )
        return Response(status=204)


# --- subscriptions -------------------------------------------------------------------------

SUBSCRIPTION_ID_PATH = OpenApiParameter("subscriptionId", OpenApiTypes.UUID, OpenApiParameter.PATH)
IDEMPOTENCY_KEY_HEADER = idempotency_key_header(
    required=True, description="Required: a retry with the same key returns the same subscription, never a second one."
)


class SubscriptionsListQuerySerializer(PageQuerySerializer):
    companyId = serializers.UUIDField()


class SubscriptionCollectionApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_subscriptions_create",
        summary="Subscribe a company to a tier in Stripe (base fee + feature prices), then link and apply it",
        parameters=[IDEMPOTENCY_KEY_HEADER],
        request=SubscriptionCreateInputSerializer,
        responses={201: SubscriptionSerializer, **error_responses(400, 402, 404, 409, 503, _402=_402)},
    )
    def post(self, request):
        data = validated(SubscriptionCreateInputSerializer, request.data)
        key = _idempotency_key(request)
        result = subscription_create(
            product_id=request.auth.product_id,
            company_id=data["companyId"],
            tier_code=data["tierCode"],
            trial_period_days=data.get("trialPeriodDays"),
            payment_method_id=data.get("paymentMethodId") or None,
            idempotency_key=key,
            actor=Actor.from_request(request),
        )
        return Response(SubscriptionSerializer(result.subscription).data, status=201)

    @extend_schema(
        tags=TAGS,
        operation_id="billing_subscriptions_list",
        summary="The company's subscriptions in this product, newest first",
        parameters=[SubscriptionsListQuerySerializer],
        responses={200: page_of(SubscriptionSerializer), **error_responses(400, 404)},
    )
    def get(self, request):
        query = validated(SubscriptionsListQuerySerializer, request.query_params)
        subscriptions = subscriptions_list(product_id=request.auth.product_id, company_id=query["companyId"])
        page = paginate(subscriptions, limit=query["limit"], cursor=query.get("cursor"))
        return page_response(page, SubscriptionSerializer)


class SubscriptionDetailApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_subscriptions_get",
        summary="One subscription",
        parameters=[SUBSCRIPTION_ID_PATH],
        responses={200: SubscriptionSerializer, **error_responses(404)},
    )
    def get(self, request, subscriptionId):  # noqa: N803 - the path parameter's API name
        subscription = subscription_get_visible(product_id=request.auth.product_id, subscription_id=subscriptionId)
        return Response(SubscriptionSerializer(subscription).data)


class SubscriptionChangeApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_subscriptions_change",
        summary="Move a subscription to another tier (items swapped in Stripe, prorated) and apply it",
        parameters=[SUBSCRIPTION_ID_PATH],
        request=SubscriptionChangeInputSerializer,
        responses={200: SubscriptionSerializer, **error_responses(400, 402, 404, 409, 503, _402=_402)},
    )
    def post(self, request, subscriptionId):  # noqa: N803
        data = validated(SubscriptionChangeInputSerializer, request.data)
        result = subscription_change(
            product_id=request.auth.product_id,
            subscription_id=subscriptionId,
            tier_code=data["tierCode"],
            proration_behavior=data["prorationBehavior"],
            actor=Actor.from_request(request),
        )
        return Response(SubscriptionSerializer(result.subscription).data)


class SubscriptionCancelApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_subscriptions_cancel",
        summary="Cancel at period end (default) or now",
        parameters=[SUBSCRIPTION_ID_PATH],
        request=SubscriptionCancelInputSerializer,
        responses={200: SubscriptionSerializer, **error_responses(400, 404, 409, 503)},
    )
    def post(self, request, subscriptionId):  # noqa: N803
        data = validated(SubscriptionCancelInputSerializer, request.data)
        result = subscription_cancel(
            product_id=request.auth.product_id,
            subscription_id=subscriptionId,
            at_period_end=data["atPeriodEnd"],
            reason=data["reason"],
            actor=Actor.from_request(request),
        )
        return Response(SubscriptionSerializer(result.subscription).data)


class SubscriptionResumeApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_subscriptions_resume",
        summary="Undo a pending cancel at period end (409 if none is pending)",
        parameters=[SUBSCRIPTION_ID_PATH],
        request=None,
        responses={200: SubscriptionSerializer, **error_responses(404, 409, 503)},
    )
    def post(self, request, subscriptionId):  # noqa: N803
        result = subscription_resume(
            product_id=request.auth.product_id, subscription_id=subscriptionId, actor=Actor.from_request(request)
        )
        return Response(SubscriptionSerializer(result.subscription).data)


# --- credit purchases (SPEC §7) ------------------------------------------------------------


class PurchasesListQuerySerializer(PageQuerySerializer):
    companyId = serializers.UUIDField()


class PurchaseCollectionApi(APIView):
    @extend_schema(
        tags=["credits"],
        operation_id="credits_purchases_create",
        summary="Buy credits with a Stripe PaymentIntent (the company's default card, or paymentMethodId)",
        parameters=[IDEMPOTENCY_KEY_HEADER],
        request=PurchaseCreateInputSerializer,
        responses={201: PurchaseCreateResultSerializer, 200: PurchaseCreateResultSerializer,
                   **error_responses(400, 402, 404, 409, 423, 503, _402=_402)},
    )
    def post(self, request):
        data = validated(PurchaseCreateInputSerializer, request.data)
        result = purchase_create(
            product_id=request.auth.product_id,
            company_id=data["companyId"],
            credits=data["credits"],
            amount=data["amount"],
            currency=data["currency"],
            payment_method_id=data.get("paymentMethodId") or None,
            off_session=data["offSession"],
            idempotency_key=_idempotency_key(request),
            actor=Actor.from_request(request),
        )
        body = {**PurchaseSerializer(result.purchase).data, "clientSecret": result.client_secret}
        response = Response(body, status=200 if result.replayed else 201)
        if result.replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    @extend_schema(
        tags=["credits"],
        operation_id="credits_purchases_list",
        summary="The company's credit purchases in this product, newest first",
        parameters=[PurchasesListQuerySerializer],
        responses={200: page_of(PurchaseSerializer), **error_responses(400, 404)},
    )
    def get(self, request):
        query = validated(PurchasesListQuerySerializer, request.query_params)
        purchases = purchases_list(product_id=request.auth.product_id, company_id=query["companyId"])
        page = paginate(purchases, limit=query["limit"], cursor=query.get("cursor"))
        return page_response(page, PurchaseSerializer)


def _idempotency_key(request) -> str:
    key = (request.headers.get("Idempotency-Key") or "").strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX:
        raise BadRequest.for_field("Idempotency-Key", f"Required header, 1–{IDEMPOTENCY_KEY_MAX} characters.")
    return key


# --- invoices (SPEC §8) ------------------------------------------------------------------------


class InvoicesQuerySerializer(PageQuerySerializer, InvoicesListQuerySerializer):
    pass


class InvoiceListApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_invoices_list",
        summary="The company's Stripe invoices (mirrored), newest first",
        parameters=[InvoicesQuerySerializer],
        responses={200: page_of(InvoiceSerializer), **error_responses(400, 404)},
    )
    def get(self, request):
        query = validated(InvoicesQuerySerializer, request.query_params)
        invoices = invoices_list(product_id=request.auth.product_id, company_id=query["companyId"],
                                 status=query.get("status"))
        page = paginate(invoices, limit=query["limit"], cursor=query.get("cursor"))
        return page_response(page, InvoiceSerializer)


class InvoiceDetailApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_invoices_get",
        summary="One invoice with its lines",
        parameters=[OpenApiParameter("invoiceId", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: InvoiceDetailSerializer, **error_responses(404)},
    )
    def get(self, request, invoiceId):  # noqa: N803 - the path parameter's API name
        invoice = invoice_get_visible(product_id=request.auth.product_id, invoice_id=invoiceId)
        return Response(InvoiceDetailSerializer(invoice).data)


# --- statements (SPEC §8) ----------------------------------------------------------------------


class StatementApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_statement_get",
        summary="Usage statement for any period: base fees, billable usage × unit price, credits, invoices",
        parameters=[StatementQuerySerializer],
        responses={
            (200, "application/json"): StatementSerializer,
            (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="output=html"),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="output=csv"),
            **error_responses(400, 404),
        },
    )
    def get(self, request):
        query = validated(StatementQuerySerializer, request.query_params)
        statement = statement_build(product_id=request.auth.product_id, company_id=query["companyId"],
                                    start=query["from"], end=query["to"])
        if query["output"] == "html":
            return HttpResponse(statement_html(statement), content_type="text/html; charset=utf-8")
        if query["output"] == "csv":
            return HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
        return Response(statement.as_dict())


class StatementSendApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_statement_send",
        summary="Email the statement (HTML + CSV attachment) to the given address or the primary contact",
        request=StatementSendInputSerializer,
        responses={
            200: StatementSentSerializer,
            **error_responses(400, 404, 409, _409="The company has no contact: give an email address."),
        },
    )
    def post(self, request):
        data = validated(StatementSendInputSerializer, request.data)
        statement, email = statement_send(product_id=request.auth.product_id, company_id=data["companyId"],
                                          start=data["from"], end=data["to"], email=data.get("email"))
        return Response({"sent": True, "email": email, "total": statement.total, "currency": statement.currency})


class EstimateApi(APIView):
    @extend_schema(
        tags=TAGS,
        operation_id="billing_estimate",
        summary="What a usage would cost on the company's tier and prices (the statement's arithmetic)",
        request=EstimateInputSerializer,
        responses={200: EstimateSerializer, **error_responses(400, 404)},
    )
    def post(self, request):
        data = validated(EstimateInputSerializer, request.data)
        return Response(estimate_build(product_id=request.auth.product_id, company_id=data["companyId"],
                                       usage=data["usage"]))
