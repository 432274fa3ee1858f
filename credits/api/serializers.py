"""camelCase request and response shapes of the credits API (SPEC §7)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from config.api.pagination import PageQuerySerializer
from config.api.serializers import (
    JSONObjectField,
    PlainInputFastPathMixin,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    StrictUUIDField,
    UTCDateTimeField,
    iso_utc,
)

from ..models import Bucket, EntryKind, ReservationStatus
from ..services import MAX_TTL_SECONDS

LEDGER_MAX_LIMIT = 50


# Credits moved by one call: a trillion is far beyond any real grant or debit,
# and keeps every sum of them (balances, lots) inside PostgreSQL's bigint, so a
# valid call can never fail on an overflow.
MAX_CREDIT_AMOUNT = 10**12


def _text(max_length: int, **kwargs):
    return StrictCharField(max_length=max_length, **kwargs)


class DebitSerializer(PlainInputFastPathMixin, StrictSerializer):
    """The hot path: plain input skips DRF's per-field machinery (same rules)."""

    exactly_one_of = ("companyId", "externalOrgId")

    companyId = StrictUUIDField(source="company_id", required=False)
    externalOrgId = _text(200, source="external_org_id", required=False)
    amount = StrictIntegerField(min_value=1, max_value=MAX_CREDIT_AMOUNT)
    jobId = _text(255, source="job_id")
    sourceService = _text(100, source="source_service")
    actorUserId = _text(200, source="actor_user_id", required=False)
    metadata = JSONObjectField(required=False)
    idempotencyKey = _text(255, source="idempotency_key", required=False)



class DebitResultSerializer(serializers.Serializer):
    ledgerEntryId = serializers.UUIDField()
    amount = serializers.IntegerField(help_text="Credits taken (positive).")
    totalBalanceAfter = serializers.IntegerField()
    balanceSubscriptionAfter = serializers.IntegerField()
    balancePromotionalAfter = serializers.IntegerField()
    balanceTopupAfter = serializers.IntegerField()


class RefundSerializer(StrictSerializer):
    companyId = StrictUUIDField(source="company_id")
    refundForJobId = _text(255, source="refund_for_job_id")
    sourceService = _text(100, source="source_service")
    reason = _text(500)
    amount = StrictIntegerField(min_value=1, max_value=MAX_CREDIT_AMOUNT, required=False)
    idempotencyKey = _text(255, source="idempotency_key", required=False)


class RefundResultSerializer(serializers.Serializer):
    ledgerEntryId = serializers.UUIDField()
    refunded = serializers.IntegerField(help_text="Credits actually given back.")
    forfeited = serializers.IntegerField(help_text="Shares not given back because their lot expired since the debit.")
    totalBalanceAfter = serializers.IntegerField()


class GrantSerializer(StrictSerializer):
    companyId = StrictUUIDField(source="company_id")
    amount = StrictIntegerField(min_value=1, max_value=MAX_CREDIT_AMOUNT)
    reason = _text(500)
    bucket = serializers.ChoiceField(choices=Bucket.values, default=Bucket.PROMOTIONAL)
    expiresAt = UTCDateTimeField(
        source="expires_at", required=False, allow_null=True, help_text="In the future.",
        example=lambda: timezone.now() + timedelta(days=30),
    )


class GrantResultSerializer(serializers.Serializer):
    created = serializers.BooleanField()
    ledgerEntryId = serializers.UUIDField()
    lotId = serializers.UUIDField()


class _ExpirySerializer(serializers.Serializer):
    amount = serializers.IntegerField()
    at = UTCDateTimeField()


class _CycleSerializer(serializers.Serializer):
    tierCode = serializers.CharField()
    creditsPerCycle = serializers.IntegerField()
    periodStart = UTCDateTimeField()
    periodEnd = UTCDateTimeField(allow_null=True)


class WalletSerializer(serializers.Serializer):
    balanceSubscription = serializers.IntegerField()
    balancePromotional = serializers.IntegerField()
    balanceTopup = serializers.IntegerField()
    debt = serializers.IntegerField()
    total = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()
    frozen = serializers.BooleanField()
    frozenReason = serializers.CharField(allow_null=True)
    nextExpiry = _ExpirySerializer(allow_null=True)
    cycle = _CycleSerializer(allow_null=True)
    lowBalanceThreshold = serializers.IntegerField(allow_null=True)
    autoRefill = serializers.JSONField(allow_null=True, help_text="Auto-refill settings (next issue); null until set.")


def wallet_data(summary) -> dict:
    wallet = summary.wallet
    return {
        "balanceSubscription": summary.balances["subscription"],
        "balancePromotional": summary.balances["promotional"],
        "balanceTopup": summary.balances["topup"],
        "debt": summary.debt,
        "total": summary.total,
        "reserved": summary.reserved,
        "available": max(0, summary.available),
        "frozen": bool(wallet and wallet.frozen),
        "frozenReason": (wallet.frozen_reason or None) if wallet else None,
        "nextExpiry": summary.next_expiry and {"amount": summary.next_expiry["amount"], "at": iso_utc(summary.next_expiry["at"])},
        "cycle": summary.cycle and {
            **summary.cycle,
            "periodStart": iso_utc(summary.cycle["periodStart"]),
            "periodEnd": iso_utc(summary.cycle["periodEnd"]),
        },
        "lowBalanceThreshold": wallet.low_balance_threshold if wallet else None,
        "autoRefill": None,
    }


class LedgerQuerySerializer(StrictSerializer, PageQuerySerializer):
    companyId = StrictUUIDField(source="company_id")
    limit = serializers.IntegerField(
        min_value=1, max_value=LEDGER_MAX_LIMIT, default=LEDGER_MAX_LIMIT,
        help_text=f"Page size (1–{LEDGER_MAX_LIMIT}, default {LEDGER_MAX_LIMIT}).",
    )
    kind = serializers.ChoiceField(choices=EntryKind.values, required=False)


class LedgerEntrySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=EntryKind.values)
    amount = serializers.IntegerField()
    balanceAfter = serializers.IntegerField(source="balance_after")
    bucket = serializers.SerializerMethodField()
    jobId = serializers.CharField(source="job_id", allow_null=True)
    sourceService = serializers.CharField(source="source_service", allow_null=True)
    reason = serializers.CharField(allow_null=True)
    actor = serializers.CharField(allow_null=True)
    createdAt = UTCDateTimeField(source="created_at")
    description = serializers.CharField()

    def get_bucket(self, entry) -> str | None:
        """The bucket the entry moved, or null when it touched several (or only the debt)."""
        buckets = {item["bucket"] for item in entry.allocations if "bucket" in item and item.get("amount")}
        return buckets.pop() if len(buckets) == 1 else None

    def to_representation(self, entry):
        data = super().to_representation(entry)
        for key in ("jobId", "sourceService", "reason", "actor"):
            data[key] = data[key] or None
        return data




class ReservationCreateSerializer(StrictSerializer):
    companyId = StrictUUIDField(source="company_id")
    runId = _text(255, source="run_id")
    amount = StrictIntegerField(min_value=1, max_value=MAX_CREDIT_AMOUNT)
    ttlSeconds = StrictIntegerField(source="ttl_seconds", min_value=1, max_value=MAX_TTL_SECONDS)
    minAvailable = StrictIntegerField(source="min_available", min_value=0, required=False)
    chargeOnExpiry = StrictBooleanField(source="charge_on_expiry", required=False, default=False)


class ReservationCreatedSerializer(serializers.Serializer):
    reservationId = serializers.UUIDField()
    heldAmount = serializers.IntegerField()
    expiresAt = UTCDateTimeField()
    available = serializers.IntegerField()


class ReservationPatchSerializer(StrictSerializer):
    chargeOnExpiry = StrictBooleanField(source="charge_on_expiry")


class ReservationSerializer(serializers.Serializer):
    reservationId = serializers.UUIDField(source="id")
    runId = serializers.CharField(source="run_id")
    status = serializers.ChoiceField(choices=ReservationStatus.values)
    heldAmount = serializers.IntegerField(source="amount")
    chargeOnExpiry = serializers.BooleanField(source="charge_on_expiry")
    charged = serializers.IntegerField()
    expiresAt = UTCDateTimeField(source="expires_at")


class ReservationUsageSerializer(StrictSerializer):
    usageId = _text(255, source="usage_id")
    amount = StrictIntegerField(min_value=1, max_value=MAX_CREDIT_AMOUNT)
    metadata = JSONObjectField(required=False)


class ReservationUsageResultSerializer(serializers.Serializer):
    reservationId = serializers.UUIDField()
    usageId = serializers.CharField()
    charged = serializers.IntegerField()
    totalBalanceAfter = serializers.IntegerField()


class ReservationSettleSerializer(StrictSerializer):
    amount = StrictIntegerField(min_value=0, max_value=MAX_CREDIT_AMOUNT, required=False)


class ReservationSettledSerializer(serializers.Serializer):
    reservationId = serializers.UUIDField()
    status = serializers.ChoiceField(choices=[ReservationStatus.SETTLED])
    charged = serializers.IntegerField()
    released = serializers.IntegerField()
    totalBalanceAfter = serializers.IntegerField()


class ReservationReleasedSerializer(serializers.Serializer):
    reservationId = serializers.UUIDField()
    status = serializers.ChoiceField(choices=[ReservationStatus.RELEASED])
    released = serializers.IntegerField()


class AutoRefillInputSerializer(StrictSerializer):
    enabled = serializers.BooleanField()
    threshold = serializers.IntegerField(min_value=0, max_value=10**12)
    credits = serializers.IntegerField(min_value=1, max_value=10_000_000)
    amount = serializers.IntegerField(min_value=1, max_value=100_000_000, help_text="Minor units of currency.")
    currency = serializers.RegexField(r"^[A-Za-z]{3}$")
    monthlySpendLimit = serializers.IntegerField(min_value=1, max_value=10**12, required=False, allow_null=True)
    paymentMethodId = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    lowBalanceThreshold = serializers.IntegerField(min_value=0, required=False, allow_null=True)
