"""The customer timeline (SPEC §9): everything that happened to a company,
from every app's own append-only rows, newest first, with who and why, in
words (tier names, not ids; money in currency units).

desk is the last app of the order, so it reads each app's history here
rather than each app pushing into a shared table. Each source is one query
(access history: at most four) of the newest `limit` rows, whatever the
company's history holds; a page merges them in memory. Page n therefore
reads n × page size + 1 rows per source: fine for people paging a
timeline, and the number of queries never depends on the data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.urls import reverse

from companies.models import CompanyStatus

PAGE_SIZE = 25
MAX_PAGE = 40  # 1,000 entries back; older history is on each app's own list


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # access, usage, credits, wallet, subscription, invoice, status, merge
    title: str  # what happened, in words
    who: str
    why: str
    url: str | None = None


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    page: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.page > 1


def _money(minor_units: int | None, currency: str) -> str:
    from companies.admin import format_money  # the one formatting of money for people

    return format_money(minor_units, currency)


def _value(value: Any, field: str = "") -> str:
    if value is None:
        return "unlimited" if field == "limit" else "no end" if field == "valid until" else "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


# Columns of the access history that are bookkeeping of a change, not the change.
_ACCESS_NOISE = {"set at", "set_at", "set by", "set_by", "reason", "created_at", "actor"}


def _access_entries(company_id: UUID, limit: int) -> list[TimelineEntry]:
    from entitlements.admin import company_access_history  # old → new per row, tier names (≤ 4 queries)

    entries = []
    for item in company_access_history(company_id=company_id, limit=limit):
        changes = [c for c in item["changes"] if c["field"] not in _ACCESS_NOISE and c["old"] != c["new"]]
        if item["kind"] == "Created":  # a new row: what it grants, no "before"
            words = "; ".join(
                f"{c['field']} {_value(c['new'], c['field'])}" for c in changes if c["new"] not in (None, {}, "")
            )
        else:
            words = "; ".join(
                f"{c['field']} {_value(c['old'], c['field'])} → {_value(c['new'], c['field'])}" for c in changes
            )
        words = words or "no visible change"
        record = item["record"]
        verb = {"Created": "granted", "Changed": "changed", "Deleted": "removed"}.get(item["kind"], item["kind"].lower())
        entries.append(
            TimelineEntry(
                at=record.history_date,
                kind="access",
                title=f"Access to {item['feature']} {verb}: {words}",
                who=item["actor"],
                why=item["reason"],
                url=item["url"],
            )
        )
    return entries


def _usage_entries(company_id: UUID, limit: int) -> list[TimelineEntry]:
    from metering.models import UsageEvent, UsageEventType

    rows = (
        UsageEvent.objects.filter(
            company_id=company_id, event_type__in=[UsageEventType.SET, UsageEventType.ADJUSTMENT]
        )
        .select_related("feature")
        .only(
            "event_time", "event_type", "quantity", "previous_value", "new_value", "performed_by", "actor_kind",
            "actor_label", "adjustment_reason", "feature__name", "feature__code",
        )
        .order_by("-event_time", "-id")[:limit]
    )
    entries = []
    for event in rows:
        who = event.performed_by or (f"{event.actor_kind}:{event.actor_label}" if event.actor_kind else event.actor_label)
        entries.append(
            TimelineEntry(
                at=event.event_time,
                kind="usage",
                title=f"Usage of {event.feature.name} corrected {event.previous_value} → {event.new_value} ({event.quantity:+d})",
                who=who,
                why=event.adjustment_reason,
            )
        )
    return entries


def _credit_entries(company_id: UUID, limit: int) -> list[TimelineEntry]:
    """Ledger movements other than usage debits (those are the Credits tab's
    ledger: a busy customer has thousands, which would bury everything else)."""
    from credits.models import EntryKind, LedgerEntry, WalletEvent

    entries = []
    rows = (
        LedgerEntry.objects.filter(wallet__company_id=company_id)
        .exclude(kind=EntryKind.USAGE)
        .select_related("product")
        .only("created_at", "kind", "amount", "balance_after", "actor", "reason", "description", "product__code")
        .order_by("-created_at", "-id")[:limit]
    )
    for entry in rows:
        entries.append(
            TimelineEntry(
                at=entry.created_at,
                kind="credits",
                title=(
                    f"{entry.get_kind_display()} of {entry.amount:+,} credits ({entry.product.code}); "
                    f"balance {entry.balance_after:,}"
                ),
                who=entry.actor,
                why=entry.reason or entry.description,
            )
        )
    events = (
        WalletEvent.objects.filter(wallet__company_id=company_id)
        .select_related("wallet__product")
        .order_by("-created_at", "-id")[:limit]
    )
    for event in events:
        entries.append(
            TimelineEntry(
                at=event.created_at,
                kind="wallet",
                title=f"Wallet ({event.wallet.product.code}): {event.get_kind_display().lower()}",
                who=event.actor,
                why=event.reason,
            )
        )
    return entries


def _subscription_entries(company_id: UUID, limit: int) -> list[TimelineEntry]:
    from billing.models import Subscription
    from entitlements.models import Tier

    History = Subscription.history.model
    records = list(
        History.objects.filter(company_id=company_id)
        .select_related("history_user")
        .order_by("-history_date", "-history_id")[:limit]
    )
    tier_ids = {record.tier_id for record in records if record.tier_id}
    tiers = (
        {tier.pk: f"{tier.product.code} · {tier.name}" for tier in Tier.objects.filter(pk__in=tier_ids).select_related("product")}
        if tier_ids
        else {}
    )
    verbs = {"+": "started", "~": "updated", "-": "removed"}
    entries = []
    for record in records:
        tier = tiers.get(record.tier_id) or record.display_name or "subscription"
        period = f", period ends {record.current_period_end:%d %b %Y}" if record.current_period_end else ""
        cancel = ", cancels at period end" if record.cancel_at_period_end else ""
        entries.append(
            TimelineEntry(
                at=record.history_date,
                kind="subscription",
                title=f"Subscription {tier} {verbs.get(record.history_type, 'changed')}: {record.get_status_display().lower()}{period}{cancel}",
                who=str(record.history_user) if record.history_user_id else "Stripe",
                why=record.history_change_reason or "",
            )
        )
    return entries


def _invoice_entries(company_id: UUID, limit: int) -> list[TimelineEntry]:
    from billing.models import Invoice

    rows = (
        Invoice.objects.filter(company_id=company_id)
        .select_related("product")
        .only("stripe_created_at", "number", "stripe_invoice_id", "status", "total", "amount_due", "currency",
              "billing_reason", "product__code")
        .order_by("-stripe_created_at", "-id")[:limit]
    )
    return [
        TimelineEntry(
            at=invoice.stripe_created_at,
            kind="invoice",
            title=(
                f"Invoice {invoice.number or invoice.stripe_invoice_id} ({invoice.product.code}) {invoice.status}: "
                f"{_money(invoice.total, invoice.currency)}"
                + (f", {_money(invoice.amount_due, invoice.currency)} due" if invoice.status == "open" else "")
            ),
            who="Stripe",
            why=invoice.billing_reason.replace("_", " "),
        )
        for invoice in rows
    ]


_STATUS_CAUSES = {"staff_suspend": "Suspended", "staff_reactivate": "Reactivated"}


def _status_entries(company_id: UUID, limit: int) -> list[TimelineEntry]:
    """Lifecycle status changes, suspensions and reactivations included
    (insights' one writer records every one)."""
    from insights.models import AccountStatusChange

    rows = (
        AccountStatusChange.objects.filter(company_id=company_id)
        .select_related("product")
        .order_by("-created_at", "-id")[:limit]
    )
    entries = []
    for change in rows:
        words = f"{CompanyStatus(change.from_status).label} → {CompanyStatus(change.to_status).label}"
        lead = _STATUS_CAUSES.get(change.cause)
        entries.append(
            TimelineEntry(
                at=change.created_at,
                kind="status",
                title=(f"{lead} ({change.product.code}): {words}" if lead else f"Status ({change.product.code}) {words}, by rule {change.cause}"),
                who=change.actor_label or "system",
                why=change.reason,
            )
        )
    return entries


def _merge_entries(company_id: UUID, limit: int) -> list[TimelineEntry]:
    """Merges into or from this company (desk's merge record, SPEC §3), one
    query. Until the merge record's model is installed there is nothing to
    read (the seam of issue 14 item 3)."""
    try:
        from .models import CompanyMerge
    except ImportError:
        return []
    from django.db.models import Q

    rows = (
        CompanyMerge.objects.filter(Q(target_id=company_id) | Q(source_id=company_id))
        .select_related("target")
        .order_by("-created_at")[:limit]
    )
    entries = []
    for merge in rows:
        moved = ", ".join(
            f"{count} {what}" for what, count in (merge.moved or {}).items() if isinstance(count, int) and count
        )
        entries.append(
            TimelineEntry(
                at=merge.created_at,
                kind="merge",
                title=f"Merged {merge.source_name} into {merge.target.name}" + (f": moved {moved}" if moved else ""),
                who=merge.actor,
                why=merge.reason,
            )
        )
    return entries


# One callable per source: (company_id, limit) -> entries, one bounded read each.
TIMELINE_SOURCES: list[Callable[[UUID, int], list[TimelineEntry]]] = [
    _access_entries,
    _usage_entries,
    _credit_entries,
    _subscription_entries,
    _invoice_entries,
    _status_entries,
    _merge_entries,
]


def company_timeline(*, company_id: UUID, page: int = 1, per_page: int = PAGE_SIZE) -> TimelinePage:
    """One page of the company's timeline, newest first. A fixed number of
    queries per page, whatever the history holds."""
    page = max(1, min(int(page), MAX_PAGE))
    limit = page * per_page + 1
    merged: list[TimelineEntry] = []
    for source in TIMELINE_SOURCES:
        merged.extend(source(company_id, limit))
    merged.sort(key=lambda entry: entry.at, reverse=True)
    start = (page - 1) * per_page
    return TimelinePage(
        entries=merged[start : start + per_page],
        page=page,
        has_next=len(merged) > start + per_page and page < MAX_PAGE,
    )


def company_timeline_url(company_id: UUID, page: int) -> str:
    return reverse("admin:companies_company_change", args=[company_id]) + f"?tab=timeline&timeline_page={page}#company-panel-tabs"
