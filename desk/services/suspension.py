"""Suspend and reactivate a company's account with one product (SPEC §3).

These are what the admin (Billing admin) calls. Suspension is kept on the
account (`companies`); every app asks `companies.selectors.account_is_suspended`
where it matters: checks answer `canUse: false` / `status: suspended`
(entitlements, cached per account), tracks are 412 `details.status:
suspended` (metering), debits and holds are 423 `details.reason:
company_suspended` (credits; settle and usage of reservations still work).
Nothing is deleted. Each change goes through insights' one writer of
`Account.status` (`account_status_change`: an `AccountStatusChange` row with
its cause and `company.status_changed`)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from companies.models import Account, Company, CompanyStatus
from companies.selectors import company_not_found
from config.errors import BadRequest, Conflict
from entitlements import cache as check_cache
from insights.services.lifecycle import account_status_change

MAX_REASON_LENGTH = 2000


@dataclass(frozen=True)
class StatusChange:
    company_id: UUID
    product_id: UUID
    previous_status: str
    status: str
    changed: bool


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise BadRequest.for_field("reason", "Say why; it is kept in the history and sent to the product.")
    return reason[:MAX_REASON_LENGTH]


def _locked_account(*, company: Company | UUID, product_id) -> Account:
    company_id = company.pk if isinstance(company, Company) else company
    account = Account.objects.select_for_update().filter(company_id=company_id, product_id=product_id).first()
    if account is None:
        raise company_not_found()
    return account


def _invalidate(account: Account) -> None:
    check_cache.invalidate_keys([check_cache.account_key(account.product_id, account.company_id)])


def account_suspend(*, company: Company | UUID, product_id, reason: str, actor: str = "") -> StatusChange:
    """Suspend the company's account with `product_id` (reason required).
    Suspending a suspended account changes nothing."""
    reason = _reason(reason)
    with transaction.atomic():
        account = _locked_account(company=company, product_id=product_id)
        previous = account.status
        if previous == CompanyStatus.SUSPENDED:
            return StatusChange(account.company_id, account.product_id, previous, previous, False)
        now = timezone.now()
        # insights keeps Account.status (one writer): the change, its cause and `company.status_changed`.
        account_status_change(
            account_id=account.pk, to_status=CompanyStatus.SUSPENDED, cause="staff_suspend", actor=actor, reason=reason, now=now
        )
        Account.objects.filter(pk=account.pk).update(
            status_before_suspension=previous, suspended_at=now, suspension_reason=reason
        )
        account.status = CompanyStatus.SUSPENDED
        _invalidate(account)
    return StatusChange(account.company_id, account.product_id, previous, account.status, True)


def account_reactivate(*, company: Company | UUID, product_id, reason: str, actor: str = "") -> StatusChange:
    """Undo a suspension: the account gets back the status it had (reason
    required). 409 if the account is not suspended."""
    reason = _reason(reason)
    with transaction.atomic():
        account = _locked_account(company=company, product_id=product_id)
        previous = account.status
        if previous != CompanyStatus.SUSPENDED:
            raise Conflict("The account is not suspended.", details={"status": previous})
        now = timezone.now()
        account.status = account.status_before_suspension or CompanyStatus.ACTIVE
        account_status_change(
            account_id=account.pk, to_status=account.status, cause="staff_reactivate", actor=actor, reason=reason, now=now
        )
        Account.objects.filter(pk=account.pk).update(status_before_suspension="", suspended_at=None, suspension_reason="")
        _invalidate(account)
    return StatusChange(account.company_id, account.product_id, previous, account.status, True)
