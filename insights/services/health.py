"""Health scores (SPEC §8): the facts of each account read through the other
apps' selectors (metering's daily rollups and current usage against limits,
credits' wallets and ledger, billing's subscriptions and invoices), scored by `insights.health.health_score`, stored
as the account's `AccountHealth` and today's (UTC) `HealthSnapshot`; then
the lifecycle rule (`lifecycle_update`, the one home of `at_risk`) runs for
the accounts that entered or left high/critical risk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.selectors import payment_facts
from billing.services.statements import LEDGER_COLUMNS
from companies.models import Account
from companies.services import accounts_health_set
from credits.selectors import wallets_use
from metering.selectors import companies_metered_usage, rollup_events_by_day

from .. import health as rule
from ..models import HIGH_RISK_LEVELS, AccountHealth, HealthSnapshot
from .lifecycle import lifecycle_update

BATCH = 500
USED_KINDS = [kind for kind, column in LEDGER_COLUMNS.items() if column == "used"]


def _facts_for(accounts: list[Account], *, product_id: UUID, now: datetime) -> dict[UUID, rule.HealthFacts]:
    """The facts of a batch of one product's accounts, in a fixed number of queries."""
    company_ids = [account.company_id for account in accounts]
    today = now.astimezone(UTC).date()
    current_from = today - timedelta(days=rule.TREND_DAYS - 1)
    previous_from = current_from - timedelta(days=rule.TREND_DAYS)
    lookback = min(previous_from, today - timedelta(days=rule.RECENCY_ZERO_DAYS))
    days_of = rollup_events_by_day(
        product_id=product_id, company_ids=company_ids, start=lookback, end=today + timedelta(days=1)
    )
    usage = companies_metered_usage(company_ids=company_ids, at=now)
    credits = wallets_use(
        product_id=product_id, company_ids=company_ids, kinds=USED_KINDS, since=now - timedelta(days=rule.BURN_DAYS)
    )
    payments = payment_facts(
        product_id=product_id, company_ids=company_ids,
        uncollectible_since=now - timedelta(days=rule.UNCOLLECTIBLE_LOOKBACK_DAYS),
    )
    facts = {}
    for account in accounts:
        company_id = account.company_id
        limits = [
            rule.LimitUse(feature_code=row.feature.code, used=row.current_usage, limit=row.quantity_limit)
            for row in usage.get(company_id, [])
            if row.feature.product_id == product_id and row.is_enabled and row.quantity_limit
        ]
        available, used = credits.get(company_id, (None, 0))
        payment = payments.get(company_id)
        days = days_of.get(company_id, {})
        facts[account.pk] = rule.HealthFacts(
            events_current=sum(n for day, n in days.items() if day >= current_from),
            events_previous=sum(n for day, n in days.items() if previous_from <= day < current_from),
            limits=limits,
            credits_available=available,
            credits_used_recent=used,
            failing_subscriptions=payment.failing_subscriptions if payment else [],
            uncollectible_invoices=payment.uncollectible_invoices if payment else 0,
            open_invoices_due=payment.open_invoices_due if payment else 0,
            last_usage_on=max(days) if days else None,
        )
    return facts


def health_compute(
    *, product_id: UUID | None = None, account_ids=None, now: datetime | None = None, lifecycle: bool = True
) -> int:
    """Score every account (of one product, or the given accounts, or all):
    write its `AccountHealth` and today's `HealthSnapshot` (both upserted:
    running it twice a day changes nothing but `computed_at`), then apply the
    lifecycle rule to the accounts that entered or left high/critical risk.
    `lifecycle=False` leaves statuses alone (the demo data, whose statuses
    are typed in without subscriptions). Returns the number of accounts scored."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    weights = getattr(settings, "HEALTH_WEIGHTS", None)
    thresholds = getattr(settings, "HEALTH_RISK_THRESHOLDS", None)
    accounts = Account.objects.only("id", "company_id", "product_id").order_by("product_id", "id")
    if product_id is not None:
        accounts = accounts.filter(product_id=product_id)
    if account_ids is not None:
        accounts = accounts.filter(id__in=list(account_ids))
    by_product: dict[UUID, list[Account]] = {}
    for account in accounts:
        by_product.setdefault(account.product_id, []).append(account)
    scored = 0
    risk_changed: list[UUID] = []
    for pid, product_accounts in by_product.items():
        for offset in range(0, len(product_accounts), BATCH):
            batch = product_accounts[offset : offset + BATCH]
            facts = _facts_for(batch, product_id=pid, now=now)
            before = dict(
                AccountHealth.objects.filter(account_id__in=[a.pk for a in batch]).values_list("account_id", "risk_level")
            )
            healths, snapshots = [], []
            for account in batch:
                result = rule.health_score(facts[account.pk], now=now, weights=weights, thresholds=thresholds)
                components = [component.as_dict() for component in result.components]
                healths.append(
                    AccountHealth(
                        account_id=account.pk, score=result.score, risk_level=result.risk_level,
                        components=components, computed_at=now,
                    )
                )
                snapshots.append(
                    HealthSnapshot(account_id=account.pk, date=today, score=result.score, risk_level=result.risk_level)
                )
                if (before.get(account.pk) in HIGH_RISK_LEVELS) != (result.risk_level in HIGH_RISK_LEVELS):
                    risk_changed.append(account.pk)
            with transaction.atomic():
                AccountHealth.objects.bulk_create(
                    healths, update_conflicts=True, unique_fields=["account"],
                    update_fields=["score", "risk_level", "components", "computed_at"],
                )
                HealthSnapshot.objects.bulk_create(
                    snapshots, update_conflicts=True, unique_fields=["account", "date"],
                    update_fields=["score", "risk_level"],
                )
                accounts_health_set({h.account_id: (h.score, h.risk_level) for h in healths})
            scored += len(batch)
    if risk_changed and lifecycle:
        lifecycle_update(account_ids=risk_changed, now=now)
    return scored
