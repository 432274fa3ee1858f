"""The credit wallet (SPEC §7): one wallet per (company, product), made of
lots, with an append-only ledger of every movement and holds (reservations).

What the database enforces (constraints below, and a PostgreSQL trigger that
refuses UPDATE and DELETE on ledger entries):
- a lot's `remaining` stays within 0 … `amount`; wallet balances, debt and
  holds are never negative;
- one wallet per (company, product); one ledger entry per (product,
  idempotency key); one grant per (wallet, reason); one `usage` charge per
  (reservation, usageId); one active reservation per (wallet, runId); a paid
  invoice or a PaymentIntent adds at most one lot.
What the code enforces (and `manage.py credits_verify` proves), because it
spans rows: the ledger of a wallet sums to its balance; each entry's lot
allocations sum to its amount; each lot's `remaining` is the sum of the
allocations that touched it; the wallet's per-bucket balances are the sums of
its lots and `reserved` the sum of its active holds. Every write that moves
any of these holds the wallet row lock (see services/ledger.py)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from companies.models import Company, Product


class Bucket(models.TextChoices):
    SUBSCRIPTION = "subscription", "Subscription"
    PROMOTIONAL = "promotional", "Promotional"
    TOPUP = "topup", "Top-up"


# Among lots expiring at the same time (or never): the order they are spent in.
BUCKET_SPEND_RANK = {Bucket.SUBSCRIPTION: 0, Bucket.PROMOTIONAL: 1, Bucket.TOPUP: 2}


class Wallet(models.Model):
    """A company's credits in one product. The balances are the sums of the
    lots per bucket (kept here so a debit and a balance read touch one row);
    `total` = lots − debt; `available` = total − active holds."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="credit_wallets")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="credit_wallets")
    balance_subscription = models.BigIntegerField(default=0, editable=False)
    balance_promotional = models.BigIntegerField(default=0, editable=False)
    balance_topup = models.BigIntegerField(default=0, editable=False)
    debt = models.BigIntegerField(
        default=0, editable=False, help_text="What a late charge could not take from the lots; paid by the next credits."
    )
    reserved = models.BigIntegerField(default=0, editable=False, help_text="Held by active reservations.")
    frozen = models.BooleanField(default=False, editable=False)
    frozen_reason = models.CharField(max_length=500, blank=True, default="", editable=False)
    frozen_at = models.DateTimeField(null=True, blank=True, editable=False)
    frozen_by = models.CharField(max_length=200, blank=True, default="", editable=False)
    low_balance_threshold = models.BigIntegerField(
        null=True, blank=True, help_text="credits.low_balance fires each time the balance falls below this."
    )
    # The auto-refill trigger, kept on the row every debit already locks
    # (null: auto-refill off); the rest of the settings are in AutoRefill.
    auto_refill_threshold = models.BigIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["company__name"]
        permissions = [
            ("grant_credits", "Can grant credits"),
            ("freeze_wallet", "Can freeze and unfreeze credit wallets"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["company", "product"], name="wallet_unique_per_company_product"),
            models.CheckConstraint(
                condition=Q(balance_subscription__gte=0) & Q(balance_promotional__gte=0) & Q(balance_topup__gte=0),
                name="wallet_bucket_balances_non_negative",
            ),
            models.CheckConstraint(condition=Q(debt__gte=0), name="wallet_debt_non_negative"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="wallet_reserved_non_negative"),
            models.CheckConstraint(
                condition=Q(low_balance_threshold__isnull=True) | Q(low_balance_threshold__gte=0),
                name="wallet_low_balance_threshold_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.company} · {self.product.code}"

    @property
    def lots_total(self) -> int:
        return self.balance_subscription + self.balance_promotional + self.balance_topup

    @property
    def total(self) -> int:
        return self.lots_total - self.debt

    @property
    def available(self) -> int:
        return self.total - self.reserved

    def bucket_balances(self) -> dict[str, int]:
        return {
            Bucket.SUBSCRIPTION: self.balance_subscription,
            Bucket.PROMOTIONAL: self.balance_promotional,
            Bucket.TOPUP: self.balance_topup,
        }


class LotOrigin(models.TextChoices):
    GRANT = "grant", "Grant"
    INVOICE = "invoice", "Paid invoice (subscription cycle)"
    PAYMENT_INTENT = "payment_intent", "Purchase (PaymentIntent)"
    TRANSFER = "transfer", "Transfer from another wallet"


class CreditLot(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="lots")
    bucket = models.CharField(max_length=16, choices=Bucket.choices)
    amount = models.BigIntegerField(help_text="Credits the lot brought in.")
    remaining = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    origin = models.CharField(max_length=16, choices=LotOrigin.choices)
    grant_reason = models.CharField(max_length=500, blank=True, default="")
    stripe_invoice_id = models.CharField(max_length=255, blank=True, default="")
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, default="")
    transferred_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # The subscription cycle a subscription lot pays for (recorded by billing).
    cycle_tier_code = models.CharField(max_length=64, blank=True, default="")
    cycle_period_start = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at"]
        verbose_name = "credit lot"
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="lot_amount_positive"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=models.F("amount")), name="lot_remaining_within_amount"
            ),
            models.UniqueConstraint(
                fields=["wallet", "stripe_invoice_id"], condition=~Q(stripe_invoice_id=""), name="lot_once_per_invoice"
            ),
            models.UniqueConstraint(
                fields=["stripe_payment_intent_id"],
                condition=~Q(stripe_payment_intent_id=""),
                name="lot_once_per_payment_intent",
            ),
        ]
        indexes = [
            # The expiry sweep: lots past their expiry that still hold credits.
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0), name="lot_expiring_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_bucket_display()} lot {self.remaining}/{self.amount}"

    def is_expired(self, at) -> bool:
        return self.expires_at is not None and self.expires_at <= at


class EntryKind(models.TextChoices):
    GRANT = "grant", "Grant"
    PURCHASE = "purchase", "Purchase"
    USAGE = "usage", "Usage"
    REFUND = "refund", "Refund"
    REVERSAL = "reversal", "Reversal"
    FALLBACK = "fallback", "Fallback charge"
    EXPIRY = "expiry", "Expiry"
    ADJUSTMENT = "adjustment", "Adjustment"
    TRANSFER = "transfer", "Transfer"


# A refund whose every share was forfeited (its lots expired) is a 0 entry.
_CREDITING = [EntryKind.GRANT, EntryKind.PURCHASE]
_DEBITING = [EntryKind.USAGE, EntryKind.REVERSAL, EntryKind.FALLBACK, EntryKind.EXPIRY]


class LedgerEntry(models.Model):
    """One movement of a wallet. Append-only: never updated or deleted (a
    PostgreSQL trigger refuses both); a correction is a new entry.

    `allocations` lists what the movement did, each item's `amount` being its
    effect on the balance: `{"lot": id, "bucket": b, "amount": ±n}` for a lot,
    `{"debt": ±n, "amount": ±n}` for the debt (+n = debt paid); a refund also
    lists what it counted against the debit per lot, `{"lot", "claimed": n}`
    (returned) or `{"lot", "forfeited": n}` (not returned: the lot expired),
    both with `"amount": 0`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Every index is paid on each debit's insert, so foreign keys get none of
    # their own where a composite index below already starts with them (or
    # nothing looks rows up by them): see Meta.indexes.
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries", db_index=False)
    # The wallet's product, kept on the entry so that idempotency keys are
    # unique per product (SPEC §2), not only per wallet.
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+", db_index=False)
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    amount = models.BigIntegerField(help_text="Signed: credits in are positive.")
    balance_after = models.BigIntegerField()
    bucket_balances_after = models.JSONField(default=dict)
    allocations = models.JSONField(default=list)
    actor = models.CharField(max_length=300, blank=True, default="")
    reason = models.CharField(max_length=500, blank=True, default="")
    description = models.CharField(max_length=500, blank=True, default="")
    job_id = models.CharField(max_length=255, blank=True, default="")
    source_service = models.CharField(max_length=100, blank=True, default="")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    # The debit a refund gives back, the purchase a reversal takes back, the
    # other side of a transfer.
    reference = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    lot = models.ForeignKey(
        CreditLot, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    reservation = models.ForeignKey(
        "Reservation", null=True, blank=True, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(
                fields=["product", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="ledger_idempotency_key_per_product",
            ),
            models.UniqueConstraint(
                fields=["wallet", "reason"], condition=Q(kind=EntryKind.GRANT), name="ledger_one_grant_per_reason"
            ),
            models.UniqueConstraint(
                fields=["reservation"], condition=Q(kind=EntryKind.FALLBACK), name="ledger_one_fallback_per_reservation"
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=_CREDITING) | Q(amount__gt=0), name="ledger_credits_in_positive"
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=_DEBITING) | Q(amount__lt=0), name="ledger_credits_out_negative"
            ),
            models.CheckConstraint(condition=~Q(kind=EntryKind.REFUND) | Q(amount__gte=0), name="ledger_refund_not_negative"),
        ]
        indexes = [
            models.Index(fields=["wallet", "-created_at", "-id"], name="ledger_wallet_newest_idx"),
            models.Index(fields=["wallet", "job_id", "source_service"], name="ledger_job_idx"),
            models.Index(fields=["reference"], condition=Q(reference__isnull=False), name="ledger_reference_idx"),
            models.Index(fields=["reservation"], condition=Q(reservation__isnull=False), name="ledger_reservation_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount:+d}"


class ReservationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SETTLED = "settled", "Settled"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class Reservation(models.Model):
    """A hold on `amount` credits for a run. The hold still standing is
    `amount − charged` (never below 0) while active; `/usage` charges at once
    (ledger entries pointing here), settle/release/expiry end the hold."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="reservations")
    run_id = models.CharField(max_length=255)
    amount = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=ReservationStatus.choices, default=ReservationStatus.ACTIVE)
    charge_on_expiry = models.BooleanField(default=False)
    expires_at = models.DateTimeField()
    charged = models.BigIntegerField(default=0, help_text="Everything charged for this run so far.")
    usage_recorded = models.BigIntegerField(default=0, help_text="What /usage recorded.")
    settled_amount = models.BigIntegerField(null=True, blank=True, help_text="The real cost given to settle.")
    settle_charge = models.BigIntegerField(default=0, help_text="What settling charged (beyond /usage).")
    released = models.BigIntegerField(default=0, help_text="Hold freed when the reservation ended.")
    actor = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["wallet", "run_id"],
                condition=Q(status=ReservationStatus.ACTIVE),
                name="reservation_one_active_per_run",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="reservation_amount_positive"),
            models.CheckConstraint(
                condition=Q(charged__gte=0) & Q(usage_recorded__gte=0) & Q(released__gte=0),
                name="reservation_counters_non_negative",
            ),
        ]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(status=ReservationStatus.ACTIVE), name="reservation_active_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} ({self.status})"

    @property
    def hold_remaining(self) -> int:
        if self.status != ReservationStatus.ACTIVE:
            return 0
        return max(0, self.amount - self.charged)


class ReservationUsage(models.Model):
    """Real usage a run recorded, once per `usage_id`; `charge` is what it
    cost the wallet (0 when an earlier fallback charge already covered it)."""

    id = models.BigAutoField(primary_key=True)
    reservation = models.ForeignKey(Reservation, on_delete=models.PROTECT, related_name="usages")
    usage_id = models.CharField(max_length=255)
    amount = models.BigIntegerField()
    charge = models.BigIntegerField(default=0)
    entry = models.ForeignKey(LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["reservation", "usage_id"], name="reservation_usage_once_per_id"),
            models.CheckConstraint(condition=Q(amount__gt=0) & Q(charge__gte=0), name="reservation_usage_positive"),
        ]


class WalletEvent(models.Model):
    """Who froze, unfroze or re-configured a wallet, and why (append-only)."""

    class Kind(models.TextChoices):
        FROZEN = "frozen", "Frozen"
        UNFROZEN = "unfrozen", "Unfrozen"
        THRESHOLD = "threshold", "Low-balance threshold changed"

    id = models.BigAutoField(primary_key=True)
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reason = models.CharField(max_length=500)
    actor = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]


class AutoRefill(models.Model):
    """A wallet's auto-refill settings (SPEC §7). `enabled` and `threshold`
    are mirrored on the wallet (`auto_refill_threshold`) for the debit's hot path."""

    wallet = models.OneToOneField(Wallet, on_delete=models.PROTECT, primary_key=True, related_name="auto_refill")
    enabled = models.BooleanField(default=False)
    threshold = models.BigIntegerField()
    credits = models.BigIntegerField()
    amount = models.BigIntegerField(help_text="Price of the refill in minor units of `currency`.")
    currency = models.CharField(max_length=3)
    monthly_spend_limit = models.BigIntegerField(null=True, blank=True, help_text="Money per calendar month (UTC).")
    payment_method_id = models.CharField(max_length=255, blank=True, default="")
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_failure_code = models.CharField(max_length=100, blank=True, default="")
    last_failure_message = models.CharField(max_length=500, blank=True, default="")
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(threshold__gte=0) & Q(credits__gt=0) & Q(amount__gt=0),
                                   name="auto_refill_positive"),
        ]


class RefillStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


REFILL_IN_FLIGHT = [RefillStatus.PENDING, RefillStatus.PROCESSING]


class RefillRequest(models.Model):
    """A refill to make: written in the transaction of the debit that left the
    balance under the threshold; at most one in flight per wallet (the partial
    unique index). Billing's `auto_refill` job turns it into one PaymentIntent."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="refill_requests")
    status = models.CharField(max_length=16, choices=RefillStatus.choices, default=RefillStatus.PENDING)
    balance_at_request = models.BigIntegerField()
    credits = models.BigIntegerField(null=True, blank=True)
    amount = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="")
    payment_intent_id = models.CharField(max_length=255, blank=True, default="")
    error_code = models.CharField(max_length=100, blank=True, default="")
    error_message = models.CharField(max_length=500, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["wallet"], condition=Q(status__in=REFILL_IN_FLIGHT),
                                    name="refill_one_in_flight_per_wallet"),
        ]
