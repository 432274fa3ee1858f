"""The credits API: parse, call one service or selector, serialize."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from companies.actors import Actor
from config.api.pagination import page_of, page_response, paginate
from config.api.schema import error_responses, idempotency_key_header, validated
from config.errors import Forbidden

from .. import selectors, services
from ..selectors import company_id_resolve
from .serializers import (
    AutoRefillInputSerializer,
    DebitResultSerializer,
    DebitSerializer,
    GrantResultSerializer,
    GrantSerializer,
    LedgerEntrySerializer,
    LedgerQuerySerializer,
    RefundResultSerializer,
    RefundSerializer,
    ReservationCreatedSerializer,
    ReservationCreateSerializer,
    ReservationPatchSerializer,
    ReservationReleasedSerializer,
    ReservationSerializer,
    ReservationSettledSerializer,
    ReservationSettleSerializer,
    ReservationUsageResultSerializer,
    ReservationUsageSerializer,
    WalletSerializer,
    wallet_data,
)

REPLAY_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_HEADER = "HTTP_IDEMPOTENCY_KEY"
_REPLAY_PARAM = idempotency_key_header(
    required=False, description="Same as the body's idempotencyKey (the body wins when both are given)."
)


def _actor(request) -> str:
    """Who is calling, as stored on ledger rows: the product's API key or a signed service."""
    principal = request.auth
    service = getattr(principal, "service_name", None)
    if service:
        return f"service:{service} ({principal.key_id})"
    return str(Actor.from_request(request))  # the key's one label (companies.actors)


def _signed_service_check(request, source_service: str) -> None:
    """SPEC §7: a signed request may only debit in its own service's name."""
    service = getattr(request.auth, "service_name", None)
    if service and source_service != service:
        raise Forbidden(
            "sourceService must be the signing credential's service.",
            details={"sourceService": source_service, "serviceName": service},
        )


def _with_replay(response: Response, replayed: bool) -> Response:
    if replayed:
        response[REPLAY_HEADER] = "true"
    return response


def _idempotency_key(request, data: dict) -> None:
    header = request.META.get(IDEMPOTENCY_HEADER, "").strip()
    if header and "idempotency_key" not in data:
        data["idempotency_key"] = header[:255]


def debit_data(entry) -> dict:
    balances = entry.bucket_balances_after
    return {
        "ledgerEntryId": entry.pk,
        "amount": -entry.amount,
        "totalBalanceAfter": entry.balance_after,
        "balanceSubscriptionAfter": balances.get("subscription", 0),
        "balancePromotionalAfter": balances.get("promotional", 0),
        "balanceTopupAfter": balances.get("topup", 0),
    }


# One unbound instance validates every debit (as metering's track does):
# building a serializer per request copies its fields each time. Validation
# keeps no state on the instance.
_DEBIT_INPUT = DebitSerializer()


class CreditsDebitApi(APIView):
    @extend_schema(
        operation_id="credits_debit",
        summary="Debit credits for a job",
        parameters=[_REPLAY_PARAM],
        request=DebitSerializer,
        responses={200: DebitResultSerializer, **error_responses(400, 402, 403, 404, 409, 423)},
        description="Take `amount` credits (lots expiring first, then subscription, promotional, top-up). "
        "Idempotent by `idempotencyKey` (default sha256(jobId + sourceService)): a repeat answers the first "
        "result with `Idempotent-Replayed: true`; another amount is 409.",
    )
    def post(self, request):
        data = dict(_DEBIT_INPUT.run_validation(request.data))
        _idempotency_key(request, data)
        _signed_service_check(request, data["source_service"])
        result = services.credits_debit(product_id=request.auth.product_id, actor=_actor(request), **data)
        return _with_replay(Response(debit_data(result.entry)), result.replayed)


class CreditsRefundApi(APIView):
    @extend_schema(
        operation_id="credits_refund",
        summary="Refund (part of) a debit",
        parameters=[_REPLAY_PARAM],
        request=RefundSerializer,
        responses={200: RefundResultSerializer, **error_responses(400, 404, 409)},
        description="Give back to the lots the debit of (refundForJobId, sourceService) took from; by default "
        "all that is left. Shares whose lot has expired since are not returned (`forfeited`). Asking for more "
        "than is left is 409 with `details.refundable`.",
    )
    def post(self, request):
        data = dict(validated(RefundSerializer, request.data))
        _idempotency_key(request, data)
        result = services.credits_refund(product_id=request.auth.product_id, actor=_actor(request), **data)
        body = {
            "ledgerEntryId": result.entry.pk,
            "refunded": result.refunded,
            "forfeited": result.forfeited,
            "totalBalanceAfter": result.entry.balance_after,
        }
        return _with_replay(Response(body), result.replayed)


def _wallet_response(request, company_id) -> Response:
    wallet = selectors.wallet_find(product_id=request.auth.product_id, company_id=company_id)
    data = wallet_data(selectors.wallet_summary(wallet=wallet))
    data["autoRefill"] = selectors.auto_refill_data(wallet)
    return Response(data)


class AutoRefillApi(APIView):
    @extend_schema(
        operation_id="company_credits_auto_refill_set",
        summary="Set the company's auto-refill (SPEC §7); answers the autoRefill block",
        request=AutoRefillInputSerializer,
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 404)},
    )
    def put(self, request, companyId: str):
        data = validated(AutoRefillInputSerializer, request.data)
        company_id = company_id_resolve(product_id=request.auth.product_id, company_id=companyId)
        wallet = services.wallet_get_or_create(company_id=company_id, product_id=request.auth.product_id)
        services.auto_refill_set(wallet=wallet, actor=_actor(request), settings=services.AutoRefillSettings(
            enabled=data["enabled"], threshold=data["threshold"], credits=data["credits"], amount=data["amount"],
            currency=data["currency"], monthly_spend_limit=data.get("monthlySpendLimit"),
            payment_method_id=data.get("paymentMethodId") or None, low_balance_threshold=data.get("lowBalanceThreshold"),
        ))
        return Response(selectors.auto_refill_data(wallet))


class CompanyCreditsApi(APIView):
    @extend_schema(
        operation_id="company_credits",
        summary="A company's credit balance",
        responses={200: WalletSerializer, **error_responses(404)},
        description="Balances by bucket, debt, holds, what is available, the next expiry and the current cycle. "
        "A company without a wallet answers zeros.",
    )
    def get(self, request, companyId: str):
        return _wallet_response(request, company_id_resolve(product_id=request.auth.product_id, company_id=companyId))


class OrgCreditsApi(APIView):
    @extend_schema(
        operation_id="org_credits",
        summary="A company's credit balance, by external org id",
        responses={200: WalletSerializer, **error_responses(404)},
    )
    def get(self, request, externalOrgId: str):
        company_id = company_id_resolve(product_id=request.auth.product_id, external_org_id=externalOrgId)
        return _wallet_response(request, company_id)


class CreditsGrantApi(APIView):
    @extend_schema(
        operation_id="credits_grant",
        summary="Grant credits (once per reason)",
        request=GrantSerializer,
        responses={
            201: GrantResultSerializer,
            200: OpenApiResponse(GrantResultSerializer, description="This reason was granted before: the first grant."),
            **error_responses(400, 404, 409),
        },
    )
    def post(self, request):
        data = validated(GrantSerializer, request.data)
        company_id = company_id_resolve(product_id=request.auth.product_id, company_id=data["company_id"])
        result = services.credits_grant(
            company_id=company_id,
            product_id=request.auth.product_id,
            amount=data["amount"],
            reason=data["reason"],
            bucket=data["bucket"],
            expires_at=data.get("expires_at"),
            actor=_actor(request),
        )
        body = {"created": result.created, "ledgerEntryId": result.entry.pk, "lotId": result.lot.pk}
        return _with_replay(Response(body, status=201 if result.created else 200), not result.created)


class CreditsLedgerApi(APIView):
    @extend_schema(
        operation_id="credits_ledger",
        summary="The wallet's ledger, newest first",
        parameters=[LedgerQuerySerializer],
        responses={200: page_of(LedgerEntrySerializer), **error_responses(400, 404)},
    )
    def get(self, request):
        data = validated(LedgerQuerySerializer, request.query_params.dict())
        company_id = company_id_resolve(product_id=request.auth.product_id, company_id=data["company_id"])
        wallet = selectors.wallet_find(product_id=request.auth.product_id, company_id=company_id)
        page = paginate(
            selectors.ledger_entries(wallet=wallet, kind=data.get("kind")), limit=data["limit"], cursor=data.get("cursor")
        )
        return page_response(page, LedgerEntrySerializer)


class ReservationCreateApi(APIView):
    @extend_schema(
        operation_id="credits_reservation_create",
        summary="Hold credits for a run",
        request=ReservationCreateSerializer,
        responses={
            201: ReservationCreatedSerializer,
            200: OpenApiResponse(ReservationCreatedSerializer, description="This run already holds this amount."),
            **error_responses(400, 402, 404, 409, 423),
        },
    )
    def post(self, request):
        data = validated(ReservationCreateSerializer, request.data)
        result = services.reservation_create(product_id=request.auth.product_id, actor=_actor(request), **data)
        reservation = result.reservation
        body = {
            "reservationId": reservation.pk,
            "heldAmount": reservation.amount,
            "expiresAt": ReservationSerializer().fields["expiresAt"].to_representation(reservation.expires_at),
            "available": result.available,
        }
        return _with_replay(Response(body, status=201 if result.created else 200), not result.created)


class ReservationDetailApi(APIView):
    @extend_schema(
        operation_id="credits_reservation_update",
        summary="Mark a run as having done chargeable work",
        request=ReservationPatchSerializer,
        responses={200: ReservationSerializer, **error_responses(400, 404, 409)},
    )
    def patch(self, request, reservationId: str):
        data = validated(ReservationPatchSerializer, request.data)
        reservation = services.reservation_charge_on_expiry_set(
            product_id=request.auth.product_id, reservation_id=reservationId, **data
        )
        return Response(ReservationSerializer(reservation).data)


class ReservationUsageApi(APIView):
    @extend_schema(
        operation_id="credits_reservation_usage",
        summary="Charge real usage of a run, once per usageId",
        request=ReservationUsageSerializer,
        responses={200: ReservationUsageResultSerializer, **error_responses(400, 404, 409)},
    )
    def post(self, request, reservationId: str):
        data = validated(ReservationUsageSerializer, request.data)
        result = services.reservation_usage_record(
            product_id=request.auth.product_id, reservation_id=reservationId, actor=_actor(request), **data
        )
        body = {
            "reservationId": result.reservation.pk,
            "usageId": result.usage.usage_id,
            "charged": result.usage.charge,
            "totalBalanceAfter": result.total_balance_after,
        }
        return _with_replay(Response(body), result.replayed)


class ReservationSettleApi(APIView):
    @extend_schema(
        operation_id="credits_reservation_settle",
        summary="Settle a run: charge what is owed, free the rest",
        request=ReservationSettleSerializer,
        responses={200: ReservationSettledSerializer, **error_responses(400, 404, 409)},
    )
    def post(self, request, reservationId: str):
        data = validated(ReservationSettleSerializer, request.data or {})
        result = services.reservation_settle(
            product_id=request.auth.product_id, reservation_id=reservationId, actor=_actor(request), **data
        )
        reservation = result.reservation
        body = {
            "reservationId": reservation.pk,
            "status": reservation.status,
            "charged": reservation.settle_charge,
            "released": reservation.released,
            "totalBalanceAfter": result.total_balance_after,
        }
        return _with_replay(Response(body), result.replayed)


class ReservationReleaseApi(APIView):
    @extend_schema(
        operation_id="credits_reservation_release",
        summary="Release a hold; nothing is charged",
        request=None,
        responses={200: ReservationReleasedSerializer, **error_responses(404, 409)},
    )
    def post(self, request, reservationId: str):
        result = services.reservation_release(
            product_id=request.auth.product_id, reservation_id=reservationId, actor=_actor(request)
        )
        body = {"reservationId": result.reservation.pk, "status": result.reservation.status,
                "released": result.reservation.released}
        return _with_replay(Response(body), result.replayed)
