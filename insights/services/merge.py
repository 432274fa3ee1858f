"""Insights' part of a merge (desk.services.company_merge orchestrates)."""

from __future__ import annotations

from uuid import UUID

from django.db.models import F

from companies.models import Account

from ..models import AccountStatusChange, RevenueSnapshot


def insights_merge(*, source_id: UUID, target_id: UUID) -> int:
    """Move the duplicate's status history and revenue snapshots with its
    accounts. Run before `companies.services.accounts_merge`: an account the
    kept company lacks moves whole, so its rows only change company; where
    both have an account with a product, the duplicate's status changes
    join the kept account's history and its daily MRR snapshots are added
    to the kept account's of the same day (or moved, for days it has none),
    so every product's revenue per day stays what it was. Returns the
    status changes moved."""
    kept = dict(Account.objects.filter(company_id=target_id).values_list("product_id", "pk"))
    moved = 0
    for account_id, product_id in Account.objects.filter(company_id=source_id).values_list("pk", "product_id"):
        into = kept.get(product_id)
        if into is None:
            moved += AccountStatusChange.objects.filter(account_id=account_id).update(company_id=target_id)
            RevenueSnapshot.objects.filter(account_id=account_id).update(company_id=target_id)
            continue
        moved += AccountStatusChange.objects.filter(account_id=account_id).update(account_id=into, company_id=target_id)
        kept_days = set(RevenueSnapshot.objects.filter(account_id=into).values_list("day", flat=True))
        for snapshot in RevenueSnapshot.objects.filter(account_id=account_id):
            if snapshot.day in kept_days:
                RevenueSnapshot.objects.filter(account_id=into, day=snapshot.day).update(mrr=F("mrr") + snapshot.mrr)
                snapshot.delete()
            else:
                RevenueSnapshot.objects.filter(pk=snapshot.pk).update(account_id=into, company_id=target_id)
    return moved
