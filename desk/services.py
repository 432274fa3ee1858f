"""Suspend and reactivate a company's account with one product (SPEC §3).

These are what the admin (Billing admin) calls. Suspension is kept on the
account (`companies`); every app asks `companies.selectors.account_is_suspended`
where it matters: checks answer `canUse: false` / `status: suspended`
(entitlements, cached per account), tracks are 412 `details.status:
suspended` (metering), debits and holds are 423 `details.reason:
company_suspended` (credits; settle and usage of reservations still work).
Nothing is deleted. Each change emits `company.status_changed`."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from companies.models import Account, Company, CompanyStatus
from companies.selectors import company_not_found, external_org_id_for
from config.errors import BadRequest, Conflict
from entitlements import cache as check_cache
from notifications.models import EventType
from notifications.services import event_emit

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


def _emit(account: Account, *, previous: str, reason: str, actor: str, at) -> None:
    event_emit(
        product=account.product_id,
        type=EventType.COMPANY_STATUS_CHANGED,
        data={
            "companyId": str(account.company_id),
            "externalOrgId": external_org_id_for(product_id=account.product_id, company_id=account.company_id),
            "previousStatus": previous,
            "status": account.status,
            "reason": reason,
            "actor": actor or None,
            "at": at,
        },
    )
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
        account.status_before_suspension = previous
        account.status = CompanyStatus.SUSPENDED
        account.suspended_at = now
        account.suspension_reason = reason
        account.save(update_fields=["status", "status_before_suspension", "suspended_at", "suspension_reason", "updated_at"])
        _emit(account, previous=previous, reason=reason, actor=actor, at=now)
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
        account.status_before_suspension = ""
        account.suspended_at = None
        account.suspension_reason = ""
        account.save(update_fields=["status", "status_before_suspension", "suspended_at", "suspension_reason", "updated_at"])
        _emit(account, previous=previous, reason=reason, actor=actor, at=now)
    return StatusChange(account.company_id, account.product_id, previous, account.status, True)
