"""Keeping accounts' lifecycle `status` (SPEC §3): the `update_lifecycle` job
applies `insights.rules.lifecycle_status` to every account; each change is an
`AccountStatusChange` row with its cause and a `company.status_changed`
notification, in one transaction with the status write."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from billing.models import GRANTING_STATUSES, Subscription, SubscriptionStatus
from companies.models import Account, CompanyStatus
from companies.services import account_update
from notifications.models import EventType
from notifications.services import event_emit

from ..models import HIGH_RISK_LEVELS, AccountHealth, AccountStatusChange
from ..rules import LifecycleFacts, lifecycle_status

NEVER_STARTED = (SubscriptionStatus.INCOMPLETE, SubscriptionStatus.INCOMPLETE_EXPIRED)


def account_status_change(
    *, account_id: UUID, to_status: str, cause: str, actor=None, reason: str = "",
    expected_status: str | None = None, now: datetime | None = None,
) -> AccountStatusChange | None:
    """Set an account's status and record why (the one writer of
    `Account.status`; staff suspend/reactivate call it too, with their
    actor and reason). Emits `company.status_changed`. Nothing happens (None)
    when the status is already `to_status`, or is no longer
    `expected_status` (a concurrent change won)."""
    now = now or timezone.now()
    with transaction.atomic():
        account = Account.objects.select_for_update().select_related("company").get(pk=account_id)
        previous = account.status
        if previous == to_status or (expected_status is not None and previous != expected_status):
            return None
        account_update(company=account.company, product_id=account.product_id, status=to_status)
        change = AccountStatusChange.objects.create(
            account=account, company_id=account.company_id, product_id=account.product_id,
            from_status=previous, to_status=to_status, cause=cause,
            actor_label=str(getattr(actor, "label", actor) or "")[:200], reason=reason, created_at=now,
        )
        event_emit(
            product=account.product_id,
            type=EventType.COMPANY_STATUS_CHANGED,
            data={
                "companyId": account.company_id,
                "previousStatus": previous,
                "status": to_status,
                "cause": cause,
                "reason": reason,
                "changedAt": now,
            },
            now=now,
        )
    return change


def lifecycle_update(*, product_id: UUID | None = None, account_ids=None, now: datetime | None = None) -> int:
    """Apply the lifecycle rule to every account (of one product, or the
    given accounts, or all). Health risk `high`/`critical` (the stored
    `AccountHealth`, insights.services.health) makes a granting account `at_risk`:
    one read of the facts for all accounts, then one short transaction per
    account that changes. Idempotent. Returns the number of changes."""
    now = now or timezone.now()
    subscriptions = Subscription.objects.filter(company_id=OuterRef("company_id"), product_id=OuterRef("product_id"))
    granting = subscriptions.filter(status__in=GRANTING_STATUSES, tier__isnull=False)
    accounts = Account.objects.annotate(
        granting=Exists(granting),
        payment_failing=Exists(granting.filter(status=SubscriptionStatus.PAST_DUE)),
        ever_subscribed=Exists(subscriptions.exclude(status__in=NEVER_STARTED)),
        high_risk=Exists(AccountHealth.objects.filter(account_id=OuterRef("pk"), risk_level__in=HIGH_RISK_LEVELS)),
        reactivated_at=Max("status_changes__created_at", filter=Q(status_changes__to_status=CompanyStatus.REACTIVATED)),
    ).values_list("id", "status", "granting", "payment_failing", "high_risk", "ever_subscribed", "reactivated_at")
    if product_id is not None:
        accounts = accounts.filter(product_id=product_id)
    if account_ids is not None:
        accounts = accounts.filter(id__in=list(account_ids))
    changed = 0
    for account_id, status, is_granting, failing, risky, ever, reactivated_at in accounts.iterator(chunk_size=2000):
        facts = LifecycleFacts(
            status=status, granting=is_granting, payment_failing=failing, high_risk=risky,
            ever_subscribed=ever, reactivated_at=reactivated_at,
        )
        to_status, cause = lifecycle_status(facts, now=now)
        if to_status != status and account_status_change(
            account_id=account_id, to_status=to_status, cause=cause, actor="update_lifecycle",
            expected_status=status, now=now,
        ):
            changed += 1
    return changed
