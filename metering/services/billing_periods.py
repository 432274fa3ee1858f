"""Billing periods pushed by billing (SPEC §1 (b)): the one way metering
learns a company's subscription periods, which `billing_period` meters follow."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from ..models import BillingPeriod


def billing_periods_set(*, company_id, periods: Iterable[tuple[datetime, datetime]]) -> None:
    """Replace the company's billing periods by `periods` ((start, end) of each
    subscription that grants access now; empty when none does). Idempotent."""
    wanted = {(start, end) for start, end in periods if start and end and end > start}
    now = timezone.now()
    with transaction.atomic():
        existing = {
            (row.period_start, row.period_end): row.pk
            for row in BillingPeriod.objects.select_for_update().filter(company_id=company_id)
        }
        stale = [pk for bounds, pk in existing.items() if bounds not in wanted]
        if stale:
            BillingPeriod.objects.filter(pk__in=stale).delete()
        BillingPeriod.objects.bulk_create(
            [
                BillingPeriod(company_id=company_id, period_start=start, period_end=end, updated_at=now)
                for start, end in wanted - existing.keys()
            ],
            ignore_conflicts=True,
        )
