"""Merge a duplicate company into the one that stays (SPEC §3 "Merge").

`company_merge` runs every app's part in one transaction, in the app order
(each app writes only its own rows):

1. companies: lock both companies (primary-key order), contacts (dedupe by
   email, the kept primary wins), product links (`linkType: merged`)
2. entitlements: overrides the kept company lacks (`feature_access_merge`)
3. metering: meters summed per period, events and snapshots re-pointed,
   rollups summed (`usage_merge`)
4. credits: each wallet emptied into the kept one by a transfer pair (`wallets_merge`)
5. billing: profiles, subscriptions, invoices, purchases — 409 if both are
   Stripe customers of one product (`billing_merge`)
6. insights: status history and revenue snapshots (`insights_merge`)
7. companies: accounts combined, the duplicate left as a tombstone
8. desk: the `CompanyMerge` record (the timeline's entry) and
   `company.merged` to every product that knew the duplicate.

Refusals are checked before anything moves; any failure rolls everything
back. Running it again answers the recorded result and changes nothing.
`company_merge_preview` is the same merge, rolled back: what it shows is
exactly what the merge would do, by the same code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from billing.services.merge import billing_merge, billing_merge_check
from companies.actors import Actor
from companies.models import Company, ProductLink
from companies.selectors import company_id_parse, company_is_visible, company_merged_into, company_not_found
from companies.services import (
    accounts_merge,
    accounts_merge_check,
    companies_lock_pair,
    company_tombstone,
    contacts_merge,
    links_merge,
)
from config.errors import BadRequest, Conflict
from credits.services import wallets_merge
from entitlements.services import feature_access_merge
from insights.services.merge import insights_merge
from metering.services import usage_merge
from notifications.models import EventType
from notifications.services import event_emit

from ..models import CompanyMerge
from .suspension import MAX_REASON_LENGTH

# The counts of the SPEC §3 answer, in its order.
MOVED_KEYS = ("contacts", "links", "overrides", "meters", "events", "wallets", "subscriptions")


@dataclass(frozen=True)
class MergeResult:
    kept_company_id: UUID
    merged_company_id: UUID
    moved: dict[str, int]
    # Each app's detail (contactsDeduplicated, credits, invoices, …), for the admin and the record.
    detail: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False
    record: CompanyMerge | None = None


class _PreviewRollback(Exception):
    def __init__(self, result: MergeResult):
        self.result = result


def _reason_clean(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise BadRequest.for_field("reason", "Say why the companies are merged; it is kept in the history.")
    return reason[:MAX_REASON_LENGTH]


def _ids_clean(source, target) -> tuple[UUID, UUID]:
    source_id = source.pk if isinstance(source, Company) else company_id_parse(source)
    target_id = target.pk if isinstance(target, Company) else company_id_parse(target)
    if target_id is None:
        raise BadRequest.for_field("intoCompanyId", "Must be a company id (UUID).")
    if source_id is None:
        raise company_not_found()
    if source_id == target_id:
        raise BadRequest.for_field("intoCompanyId", "A company cannot be merged into itself.")
    return source_id, target_id


def _replay(record: CompanyMerge) -> MergeResult:
    return MergeResult(
        kept_company_id=record.target_id,
        merged_company_id=record.source_id,
        moved={key: int(record.moved.get(key, 0)) for key in MOVED_KEYS},
        detail=dict(record.moved.get("detail") or {}),
        replayed=True,
        record=record,
    )


def company_merge(
    *,
    source: Company | UUID | str,
    target: Company | UUID | str,
    reason: str,
    actor: Actor,
    product_id: UUID | None = None,
) -> MergeResult:
    """Merge `source` (the duplicate) into `target` (the company that stays)
    in one transaction. With `product_id` (an API key's product) both must
    be visible to it, else 404. 400 for a missing reason or merging a company
    into itself; 409 when `target` is itself a merged duplicate, `source`
    was merged into another company, they live in different customer pools,
    or an app refuses (both Stripe customers of one product, a frozen wallet
    or active reservations of the duplicate, a suspended duplicate account).
    Merging again into the same company answers the first result
    (`replayed=True`) and changes nothing."""
    reason = _reason_clean(reason)
    source_id, target_id = _ids_clean(source, target)
    with transaction.atomic():
        source, target = companies_lock_pair(source_id=source_id, target_id=target_id)
        if source is None or target is None:
            raise company_not_found()
        if source.merged_into_id is not None:
            return _merge_replay(source=source, target=target, product_id=product_id)
        visible = (lambda pk: True) if product_id is None else (
            lambda pk: company_is_visible(product_id=product_id, company_id=pk)
        )
        if not visible(source.pk):
            raise company_not_found()
        if target.merged_into_id is not None:
            kept = company_merged_into(company_id=target.pk)
            if not visible(kept):
                raise company_not_found()
            raise Conflict(
                "The company to keep was itself merged into another company; merge into that one.",
                details={"intoCompanyId": str(target.pk), "keptCompanyId": str(kept)},
            )
        if not visible(target.pk):
            raise company_not_found()
        if source.customer_pool != target.customer_pool:
            raise Conflict("The two companies live in different customer pools; only companies of one pool merge.")
        # Refusals first, so a refused merge has touched nothing (it would be rolled back anyway).
        accounts_merge_check(source=source, target=target)
        billing_merge_check(source=source, target=target)
        return _merge_apply(source=source, target=target, reason=reason, actor=actor, product_id=product_id)


def _merge_replay(*, source: Company, target: Company, product_id: UUID | None) -> MergeResult:
    kept = company_merged_into(company_id=source.pk)
    if product_id is not None and not company_is_visible(product_id=product_id, company_id=target.pk):
        raise company_not_found()
    record = CompanyMerge.objects.filter(source=source).first()
    if record is None or record.target_id != target.pk:
        raise Conflict(
            "This company was already merged into another company.",
            details={"companyId": str(source.pk), "keptCompanyId": str(kept)},
        )
    return _replay(record)


def _merge_apply(*, source: Company, target: Company, reason: str, actor: Actor, product_id: UUID | None) -> MergeResult:
    now = timezone.now()
    actor_label = str(actor)
    links = list(ProductLink.objects.filter(company=source).values_list("product_id", "external_org_id"))
    # 1. companies: contacts and links (so the duplicate's external ids answer the kept company).
    contacts = contacts_merge(source=source, target=target)
    links_moved, product_ids = links_merge(source=source, target=target)
    # 2.–6. every app moves its own rows.
    overrides = feature_access_merge(source=source, target=target, actor=actor, reason=reason, moved_links=links)
    usage = usage_merge(source_id=source.pk, target_id=target.pk)
    wallets = wallets_merge(source_company_id=source.pk, target_company_id=target.pk, reason=reason, actor=actor_label)
    billing = billing_merge(source=source, target=target, actor=actor, reason=reason)
    status_changes = insights_merge(source_id=source.pk, target_id=target.pk)
    # 7. accounts and the tombstone.
    accounts = accounts_merge(source=source, target=target)
    company_tombstone(source=source, target=target)
    moved = {
        "contacts": contacts.moved + contacts.deduplicated,
        "links": links_moved,
        "overrides": overrides,
        "meters": usage.meters,
        "events": usage.events,
        "wallets": wallets.wallets,
        "subscriptions": billing.subscriptions,
    }
    detail = {
        "contactsDeduplicated": contacts.deduplicated,
        "accounts": accounts,
        "snapshots": usage.snapshots,
        "rollups": usage.rollups,
        "credits": wallets.credits,
        "billingProfiles": billing.billing_profiles,
        "invoices": billing.invoices,
        "purchases": billing.purchases,
        "statusChanges": status_changes,
    }
    # 8. the record (the timeline reads it) and the products' notification.
    record = CompanyMerge.objects.create(
        source=source, target=target, source_name=source.name, reason=reason, actor=actor_label[:200],
        requested_by_product_id=product_id, product_ids=[str(pk) for pk in product_ids],
        moved={**moved, "detail": detail}, created_at=now,
    )
    for notified_product in product_ids:
        event_emit(
            product=notified_product,
            type=EventType.COMPANY_MERGED,
            data={
                "companyId": source.pk,
                "keptCompanyId": target.pk,
                "moved": moved,
                "reason": reason,
                "mergedAt": now,
            },
            now=now,
        )
    return MergeResult(
        kept_company_id=target.pk, merged_company_id=source.pk, moved=moved, detail=detail, record=record
    )


def company_merge_preview(
    *, source: Company | UUID | str, target: Company | UUID | str, reason: str = "preview", actor: Actor,
    product_id: UUID | None = None,
) -> MergeResult:
    """What `company_merge` would move (counts per app), or the error it
    would raise: the merge itself, run and rolled back, so the preview can
    never disagree with it. Nothing is kept, notified or recorded."""
    try:
        with transaction.atomic():
            result = company_merge(
                source=source, target=target, reason=reason or "preview", actor=actor, product_id=product_id
            )
            raise _PreviewRollback(result)
    except _PreviewRollback as rollback:
        return rollback.result
