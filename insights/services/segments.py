"""Segments (SPEC §8): defining them (the admin, `load_segments`) and keeping
their membership (`sync_segments`), with `segment.entered` / `segment.left`
notifications (SPEC §11) in the transaction of each membership change.

The rules of a segment's fields live here (`segment_validate`), those of its
criteria in `insights.criteria`; the admin form and the loader both call them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from companies.models import Account, CompanyStatus, Product
from companies.selectors import product_links
from notifications.models import EventType
from notifications.services import event_emit

from ..criteria import SegmentError, criteria_filter, criteria_validate
from ..models import Segment, SegmentMembership, SegmentType

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
MAX_SLUG = 64
MAX_NAME = 200
MAX_PARENT_DEPTH = 5  # a segment and up to four ancestors
FILE_KEYS = {"product", "slug", "name", "type", "criteria", "parent", "description"}


# --- Definition -----------------------------------------------------------------------


def segment_validate(
    *,
    product_id: UUID,
    slug: Any,
    name: Any,
    type: Any,
    criteria: Any,
    parent: Segment | None = None,
    segment_id: UUID | None = None,
    path: str = "",
) -> dict[str, Any]:
    """The cleaned fields of a segment of `product_id` (slug, name, type,
    criteria), or SegmentError naming each offending path (`slug`,
    `criteria.all[2].op`, `parent`; prefixed with `path`, e.g. `[3].`).
    `parent` must be a segment of the same product and must not be the
    segment itself or one of its descendants (`segment_id`, when editing)."""
    errors: list[str] = []
    if not isinstance(slug, str) or not SLUG_PATTERN.match(slug) or len(slug) > MAX_SLUG:
        errors.append(f"{path}slug: must be lower-case letters and digits joined by '-' or '_', at most {MAX_SLUG} characters")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or "\x00" in name:
        errors.append(f"{path}name: must be a non-empty string of at most {MAX_NAME} characters")
    if type not in SegmentType.values:
        errors.append(f"{path}type: must be one of {', '.join(SegmentType.values)}")
    cleaned_criteria: dict = {}
    try:
        cleaned_criteria = criteria_validate(criteria, path=f"{path}criteria", product_id=product_id)
    except SegmentError as error:
        errors.extend(error.errors)
    if parent is not None and (message := _parent_problem(parent, product_id=product_id, segment_id=segment_id)):
        errors.append(f"{path}parent: {message}")
    if errors:
        raise SegmentError(errors)
    return {"slug": slug, "name": name.strip(), "type": type, "criteria": cleaned_criteria}


def _parent_problem(parent: Segment, *, product_id: UUID, segment_id: UUID | None) -> str | None:
    if parent.product_id != product_id:
        return "must be a segment of the same product"
    chain = segment_ancestors(parent)
    if segment_id is not None and any(ancestor.pk == segment_id for ancestor in chain):
        return "makes a cycle (a segment cannot be nested under itself or its own sub-segment)"
    if len(chain) >= MAX_PARENT_DEPTH:
        return f"segments nest at most {MAX_PARENT_DEPTH} deep"
    return None


def segment_ancestors(segment: Segment) -> list[Segment]:
    """The segment and its ancestors, nearest first (stops at a cycle, which
    `segment_validate` refuses to create)."""
    chain: list[Segment] = []
    seen: set = set()
    current: Segment | None = segment
    while current is not None and current.pk not in seen and len(chain) <= MAX_PARENT_DEPTH:
        chain.append(current)
        seen.add(current.pk)
        current = current.parent
    return chain


@dataclass
class SegmentLoadResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0

    def summary(self) -> str:
        lines = [f"segments: {len(self.created)} created, {len(self.updated)} updated, {self.unchanged} unchanged"]
        if self.created:
            lines.append("created: " + ", ".join(self.created))
        if self.updated:
            lines.append("updated: " + ", ".join(self.updated))
        return "\n".join(lines)


def segments_load(*, data: Any) -> SegmentLoadResult:
    """Upsert segments from a `load_segments` document,
    `[{product, slug, name, type, criteria, parent?, description?}]`, by
    (product, slug). Idempotent (a repeat changes nothing); all or nothing:
    SegmentError lists every problem by path (`[2].criteria.all[0].op`).
    `parent` is the slug of a segment of the same product, in the file or
    already defined."""
    if not isinstance(data, list):
        raise SegmentError(["$: must be a list of segments"])
    errors: list[str] = []
    products = {product.code: product for product in Product.objects.filter(
        code__in=[item.get("product") for item in data if isinstance(item, dict) and isinstance(item.get("product"), str)]
    )}
    items: list[tuple[int, dict, Product]] = []
    seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(data):
        path = f"[{index}]"
        if not isinstance(item, dict):
            errors.append(f"{path}: must be an object")
            continue
        errors.extend(f"{path}.{key}: unknown field" for key in sorted(set(item) - FILE_KEYS, key=str))
        errors.extend(f"{path}.{key}: is required" for key in ("product", "slug", "name", "type", "criteria") if key not in item)
        product = products.get(item.get("product")) if isinstance(item.get("product"), str) else None
        if "product" in item and product is None:
            errors.append(f"{path}.product: unknown product {str(item.get('product'))[:64]!r}")
            continue
        if product is None:
            continue
        if "description" in item and (not isinstance(item["description"], str) or "\x00" in item["description"]):
            errors.append(f"{path}.description: must be a string (without NUL characters)")
        if "parent" in item and item["parent"] is not None and not isinstance(item["parent"], str):
            errors.append(f"{path}.parent: must be the slug of a segment of the same product, or null")
        key = (product.code, item.get("slug"))
        if isinstance(item.get("slug"), str):
            if key in seen:
                errors.append(f"{path}.slug: {item['slug']!r} is already defined at [{seen[key]}]")
            seen.setdefault(key, index)
        items.append((index, item, product))
    cleaned: dict[int, dict] = {}
    for index, item, product in items:
        try:
            cleaned[index] = segment_validate(
                product_id=product.pk, slug=item.get("slug"), name=item.get("name"), type=item.get("type"),
                criteria=item.get("criteria"), path=f"[{index}].",
            )
        except SegmentError as error:
            errors.extend(error.errors)
    errors.extend(_file_parent_errors(items))
    if errors:
        raise SegmentError(errors)
    result = SegmentLoadResult()
    with transaction.atomic():
        by_key: dict[tuple[UUID, str], Segment] = {
            (segment.product_id, segment.slug): segment
            for segment in Segment.objects.select_for_update().filter(product__in=products.values())
        }
        # Two passes: every segment exists before parents are pointed at.
        for index, item, product in items:
            fields = cleaned[index]
            segment = by_key.get((product.pk, fields["slug"]))
            values = {"name": fields["name"], "type": fields["type"], "criteria": fields["criteria"],
                      "description": item.get("description") or ""}
            if segment is None:
                segment = Segment.objects.create(product=product, slug=fields["slug"], **values)
                by_key[(product.pk, segment.slug)] = segment
                result.created.append(f"{product.code}/{segment.slug}")
            elif any(getattr(segment, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(segment, name, value)
                segment.save(update_fields=[*values, "updated_at"])
                result.updated.append(f"{product.code}/{segment.slug}")
        for index, item, product in items:
            segment = by_key[(product.pk, cleaned[index]["slug"])]
            parent = by_key.get((product.pk, item["parent"])) if item.get("parent") else None
            if segment.parent_id != (parent.pk if parent else None):
                segment.parent = parent
                segment.save(update_fields=["parent", "updated_at"])
                label = f"{product.code}/{segment.slug}"
                if label not in result.created and label not in result.updated:
                    result.updated.append(label)
        result.unchanged = len(items) - len(result.created) - len(result.updated)
    return result


def _file_parent_errors(items: list[tuple[int, dict, Product]]) -> list[str]:
    """Parents of a file: known (in the file or defined), no cycle, not too deep,
    judged on the graph the load would leave (the file's parents over the
    defined ones)."""
    errors: list[str] = []
    product_ids = {product.pk for _, _, product in items}
    parent_of: dict[tuple[UUID, str], str | None] = {
        (product_id, slug): parent_slug
        for product_id, slug, parent_slug in Segment.objects.filter(product_id__in=product_ids).values_list(
            "product_id", "slug", "parent__slug"
        )
    }
    for _, item, product in items:
        if isinstance(item.get("slug"), str):
            parent_of[(product.pk, item["slug"])] = item.get("parent") if isinstance(item.get("parent"), str) else None
    for index, item, product in items:
        parent = item.get("parent")
        if not isinstance(parent, str) or not isinstance(item.get("slug"), str):
            continue
        if (product.pk, parent) not in parent_of:
            errors.append(f"[{index}].parent: unknown segment {parent[:64]!r} in product {product.code!r}")
            continue
        chain, current = [item["slug"]], parent
        while current is not None and current not in chain and len(chain) <= MAX_PARENT_DEPTH:
            chain.append(current)
            current = parent_of.get((product.pk, current))
        if current is not None and current in chain:
            errors.append(f"[{index}].parent: makes a cycle ({' → '.join([*chain, current])})")
        elif len(chain) > MAX_PARENT_DEPTH:
            errors.append(f"[{index}].parent: segments nest at most {MAX_PARENT_DEPTH} deep")
    return errors


# --- Membership -----------------------------------------------------------------------


def segment_candidates(*, product_id: UUID) -> QuerySet[Account]:
    """The accounts a segment of `product_id` chooses from: those of companies
    linked to the product (the customers its API key sees)."""
    return Account.objects.filter(product_id=product_id).filter(
        Exists(product_links(product_id=product_id).filter(company_id=OuterRef("company_id")))
    )


def segment_members_query(*, segment: Segment, now: datetime | None = None) -> QuerySet[Account]:
    """The accounts that match the segment and all its ancestors now: one
    query (criteria as SQL, `insights.criteria.criteria_filter`)."""
    chain = [ancestor.criteria for ancestor in segment_ancestors(segment)]
    condition = criteria_filter(chain, product_id=segment.product_id, now=now or timezone.now())
    return condition.apply(segment_candidates(product_id=segment.product_id))


@dataclass(frozen=True)
class SegmentSyncResult:
    product: str
    slug: str
    entered: int
    left: int
    members: int


def segment_sync(*, segment_id: UUID, now: datetime | None = None) -> SegmentSyncResult:
    """Bring one segment's membership up to date: members that now match are
    inserted (`segment.entered`), those that no longer do are deleted
    (`segment.left`), each event in the transaction of its row, and `stats`
    are refreshed. Idempotent; the segment row is locked for the duration, so
    concurrent syncs of one segment run one after the other and every
    entry and exit is announced exactly once. A fixed number of queries plus
    one event per change."""
    now = now or timezone.now()
    with transaction.atomic():
        segment = Segment.objects.select_for_update(of=("self",)).select_related("product", "parent").get(pk=segment_id)
        members = segment_members_query(segment=segment, now=now)
        target = dict(members.values_list("company_id", "id"))
        current = set(SegmentMembership.objects.filter(segment=segment).values_list("company_id", flat=True))
        entered = sorted(set(target) - current)
        left = sorted(current - set(target))
        if left:
            SegmentMembership.objects.filter(segment=segment, company_id__in=left).delete()
        if entered:
            SegmentMembership.objects.bulk_create(
                [SegmentMembership(segment=segment, company_id=company_id, account_id=target[company_id], entered_at=now)
                 for company_id in entered]
            )
        for company_id in entered:
            _membership_event(segment, EventType.SEGMENT_ENTERED, company_id=company_id, now=now)
        for company_id in left:
            _membership_event(segment, EventType.SEGMENT_LEFT, company_id=company_id, now=now)
        segment.stats = _stats(segment, members=members)
        segment.last_synced_at = now
        segment.save(update_fields=["stats", "last_synced_at"])
    return SegmentSyncResult(product=segment.product.code, slug=segment.slug, entered=len(entered), left=len(left), members=len(target))


def _membership_event(segment: Segment, type: str, *, company_id: UUID, now: datetime) -> None:
    moment = "enteredAt" if type == EventType.SEGMENT_ENTERED else "leftAt"
    event_emit(
        product=segment.product_id,
        type=type,
        data={"segment": segment.slug, "segmentName": segment.name, "segmentType": segment.type,
              "companyId": company_id, moment: now},
        now=now,
    )


def _stats(segment: Segment, *, members: QuerySet[Account]) -> dict[str, Any]:
    """customerCount, percentOfTotal (of the product's customers), totalMrr,
    avgMrr (half-up), churnRate (members whose status is churned, 0–100)."""
    totals = members.aggregate(
        count=Count("id"), mrr=Sum("mrr"), churned=Count("id", filter=Q(status=CompanyStatus.CHURNED))
    )
    count, total_mrr = totals["count"], totals["mrr"] or 0
    customers = segment_candidates(product_id=segment.product_id).count()
    return {
        "customer_count": count,
        "percent_of_total": _percent(count, customers),
        "total_mrr": total_mrr,
        "avg_mrr": int((Decimal(total_mrr) / count).to_integral_value(ROUND_HALF_UP)) if count else 0,
        "churn_rate": _percent(totals["churned"], count),
        "currency": segment.product.currency,
    }


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def segments_sync(*, product_id: UUID | None = None, now: datetime | None = None) -> list[SegmentSyncResult]:
    """Sync every segment (of one product, or all), parents before their
    children, each in its own transaction. Idempotent."""
    now = now or timezone.now()
    segments = list(Segment.objects.filter(**({"product_id": product_id} if product_id else {})).values_list("id", "parent_id"))
    depth = {segment_id: 0 for segment_id, _ in segments}
    parent_of = dict(segments)
    for segment_id in depth:
        current, steps = parent_of.get(segment_id), 0
        while current is not None and steps <= MAX_PARENT_DEPTH:
            steps += 1
            current = parent_of.get(current)
        depth[segment_id] = steps
    return [segment_sync(segment_id=segment_id, now=now) for segment_id in sorted(depth, key=lambda pk: (depth[pk], str(pk)))]
