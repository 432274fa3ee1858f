"""Revenue snapshots (SPEC §8): every account's MRR derived from its
subscriptions × mirrored prices (`insights.revenue`), written to the account
(`Account.mrr`, read-only everywhere else) and to today's `RevenueSnapshot`."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from billing.models import Price, Subscription
from companies.models import Account

from ..models import RevenueSnapshot
from ..revenue import MRR_STATUSES, account_mrr


def revenue_snapshot(*, product_id: UUID | None = None, now: datetime | None = None) -> int:
    """Recompute the MRR of every account (of one product, or all), set
    `Account.mrr` where it changed and write today's (UTC) snapshot of each.
    Idempotent; past days' snapshots are never touched. Returns the number of
    accounts whose MRR changed."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    accounts = Account.objects.select_related("product").only(
        "id", "company_id", "product_id", "mrr", "currency", "product__currency"
    )
    subscriptions = Subscription.objects.filter(status__in=MRR_STATUSES).only("company_id", "product_id", "status", "items")
    if product_id is not None:
        accounts = accounts.filter(product_id=product_id)
        subscriptions = subscriptions.filter(product_id=product_id)
    by_account = defaultdict(list)
    price_ids = set()
    for subscription in subscriptions:
        by_account[(subscription.company_id, subscription.product_id)].append(subscription)
        price_ids.update(item.get("price") for item in subscription.items or [])
    prices = {price.stripe_price_id: price for price in Price.objects.filter(stripe_price_id__in=price_ids)}
    changed = 0
    snapshots = []
    with transaction.atomic():
        for account in accounts:
            currency = account.product.currency
            mrr = account_mrr(
                subscriptions=by_account.get((account.company_id, account.product_id), []), prices=prices, currency=currency
            ).amount
            if (account.mrr, account.currency) != (mrr, currency):
                Account.objects.filter(pk=account.pk).update(mrr=mrr, currency=currency, updated_at=now)
                changed += 1
            snapshots.append(
                RevenueSnapshot(
                    account_id=account.pk, company_id=account.company_id, product_id=account.product_id,
                    day=today, mrr=mrr, currency=currency, created_at=now, updated_at=now,
                )
            )
        RevenueSnapshot.objects.bulk_create(
            snapshots, batch_size=1000, update_conflicts=True,
            unique_fields=["account", "day"], update_fields=["mrr", "currency", "updated_at"],
        )
    return changed
