"""The credits errors (SPEC §2 codes with the details §7 names) and the small
rules every credits service shares."""

from __future__ import annotations

import hashlib
import json

from config.errors import BadRequest, Conflict, Locked, NotFound, PaymentRequired

# sourceService values starting with this are written by metering's
# credit-priced tracks only (SPEC §5); the API refuses them on a debit.
USAGE_SOURCE_PREFIX = "usage:"


def default_debit_key(*, job_id: str, source_service: str) -> str:
    """SPEC §7: a debit's idempotency key defaults to sha256(jobId + sourceService)."""
    return hashlib.sha256(f"{job_id}{source_service}".encode()).hexdigest()


def default_refund_key(*, refund_for_job_id: str, source_service: str, reason: str) -> str:
    return hashlib.sha256(f"{refund_for_job_id}{source_service}{reason}".encode()).hexdigest()


def fingerprint(**fields) -> str:
    """What makes two requests with one idempotency key "the same body"."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def check_positive(value: int, *, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest.for_field(field, "Must be a whole number of at least 1.")


def no_wallet() -> NotFound:
    return NotFound("This company has no credit wallet in this product.", details={"reason": "no_wallet"})


def not_enough_credits(*, required: int, available: int, debt: int = 0) -> PaymentRequired:
    details = {"required": required, "available": max(0, available)}
    if debt:
        details["debt"] = debt
        return PaymentRequired(f"The wallet owes {debt} credits; it accepts no debit until they are paid.", details=details)
    return PaymentRequired(f"Not enough credits: {required} required, {max(0, available)} available.", details=details)


def wallet_frozen(wallet) -> Locked:
    return Locked(
        f"The credit wallet is frozen: {wallet.frozen_reason}",
        details={"reason": "wallet_frozen", "frozenReason": wallet.frozen_reason},
    )


def company_suspended() -> Locked:
    return Locked("The company is suspended.", details={"reason": "company_suspended"})


def idempotency_conflict(entry, message: str) -> Conflict:
    return Conflict(
        message,
        details={"ledgerEntryId": str(entry.id), "amount": entry.amount, "kind": entry.kind, "jobId": entry.job_id},
    )


def company_suspended_check(*, company_id, product_id) -> None:
    """Raise `company_suspended()` (423) when the company's account with this
    product is suspended by staff (SPEC §3; `companies.selectors.account_is_suspended`).
    Debits and holds call this; refunds, grants, /usage and /settle of
    reservations do not (work already done is still charged)."""
    from companies.selectors import account_is_suspended

    if account_is_suspended(product_id=product_id, company_id=company_id):
        raise company_suspended()
