"""The companies' part of a merge (SPEC §3; desk.services.company_merge
orchestrates every app's part in one transaction): lock the pair, move the
contacts and product links, combine the accounts, leave the duplicate as a
tombstone. Each function assumes the caller holds `companies_lock_pair`."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.utils import timezone

from config.errors import Conflict

from ..error_codes import CompaniesErrorCode
from ..models import Account, Company, CompanyStatus, Contact, LinkType, ProductLink
from .cleaning import merge_json


def companies_lock_pair(*, source_id: UUID, target_id: UUID) -> tuple[Company, Company]:
    """Lock both companies (FOR NO KEY UPDATE, in primary-key order) and
    return them fresh (source, target). The fixed order is what keeps two
    merges A→B and B→A from deadlocking: the second waits for the first,
    then sees a tombstone. NO KEY UPDATE, not UPDATE: rows of other tables
    that only reference the companies (usage events, ledger entries) keep
    inserting, while every other writer that locks a company (contacts,
    entitlements) waits for the merge."""
    locked = {
        company.pk: company
        for company in Company.objects.select_for_update(no_key=True)
        .filter(pk__in=[source_id, target_id])
        .order_by("pk")
    }
    return locked.get(source_id), locked.get(target_id)


@dataclass(frozen=True)
class ContactsMerged:
    moved: int
    deduplicated: int


def contacts_merge(*, source: Company, target: Company) -> ContactsMerged:
    """Move the duplicate's contacts to the kept company. A contact whose
    email the kept company already has is folded into it (its empty fields
    and metadata keys filled from the duplicate's) and removed; the kept
    company's primary wins, the duplicate's primary becomes primary only if
    the kept company had none."""
    existing = {contact.email: contact for contact in Contact.objects.filter(company=target)}
    target_has_primary = any(contact.is_primary for contact in existing.values())
    moved = deduplicated = 0
    now = timezone.now()
    for contact in Contact.objects.filter(company=source).order_by("-is_primary", "email"):
        kept = existing.get(contact.email)
        if kept is not None:
            for attribute in ("name", "role", "avatar_url"):
                if not getattr(kept, attribute) and getattr(contact, attribute):
                    setattr(kept, attribute, getattr(contact, attribute))
            kept.metadata = merge_json(contact.metadata, kept.metadata)
            kept.updated_at = now
            kept.save(update_fields=["name", "role", "avatar_url", "metadata", "updated_at"])
            contact.delete()
            deduplicated += 1
            continue
        is_primary = contact.is_primary and not target_has_primary
        target_has_primary = target_has_primary or is_primary
        Contact.objects.filter(pk=contact.pk).update(company=target, is_primary=is_primary, updated_at=now)
        moved += 1
    return ContactsMerged(moved=moved, deduplicated=deduplicated)


def links_merge(*, source: Company, target: Company) -> tuple[int, list[UUID]]:
    """Re-point the duplicate's product links to the kept company as
    `linkType: merged` (their external ids now answer the kept company).
    Returns (links moved, the products they belong to)."""
    links = ProductLink.objects.filter(company=source)
    product_ids = sorted(set(links.values_list("product_id", flat=True)), key=str)
    moved = links.update(company=target, link_type=LinkType.MERGED, confidence=None, updated_at=timezone.now())
    return moved, product_ids


def accounts_merge(*, source: Company, target: Company) -> int:
    """Combine the duplicate's accounts with the kept company's, product by
    product: an account the kept company lacks moves over whole; where both
    have one, the kept account keeps its own values and takes from the
    duplicate's only what it lacks (metadata keys, billing details), the
    derived figures are combined (lifetime value summed, first purchase the
    earlier, last activity the later), and the duplicate's account is removed
    (insights moved its history first: `insights_merge`). A suspended
    duplicate account is refused (409) unless the kept account is suspended
    too or never bought (prospect), so a merge never lifts a suspension.
    Returns the accounts moved or combined."""
    kept = {account.product_id: account for account in Account.objects.select_for_update().filter(company=target)}
    count = 0
    for account in Account.objects.select_for_update().filter(company=source).order_by("pk"):
        into = kept.get(account.product_id)
        if into is None:
            Account.objects.filter(pk=account.pk).update(company=target, updated_at=timezone.now())
            count += 1
            continue
        into.metadata = merge_json(account.metadata, into.metadata)
        into.billing_email = into.billing_email or account.billing_email
        into.billing_address = into.billing_address or account.billing_address
        into.tax_id = into.tax_id or account.tax_id
        into.lifetime_value += account.lifetime_value
        into.mrr += account.mrr  # both derived from subscriptions, which move to the kept company
        into.first_purchase_at = min(
            (at for at in (into.first_purchase_at, account.first_purchase_at) if at), default=None
        )
        into.last_activity_at = max((at for at in (into.last_activity_at, account.last_activity_at) if at), default=None)
        into.save()
        account.delete()
        count += 1
    return count


def accounts_merge_check(*, source: Company, target: Company) -> None:
    """The one refusal of `accounts_merge`, asked before anything moves."""
    kept = dict(Account.objects.filter(company=target).values_list("product_id", "status"))
    for product_id, status in Account.objects.filter(company=source).values_list("product_id", "status"):
        kept_status = kept.get(product_id)
        if (
            status == CompanyStatus.SUSPENDED
            and kept_status is not None
            and kept_status not in (CompanyStatus.SUSPENDED, CompanyStatus.PROSPECT)
        ):
            raise Conflict(
                "The duplicate's account is suspended and the kept company's is not; reactivate the duplicate "
                "or suspend the kept company's account first.",
                details={"productId": str(product_id)},
                reason=CompaniesErrorCode.MERGE_SUSPENDED,
            )


def company_tombstone(*, source: Company, target: Company) -> Company:
    """Leave the duplicate as a tombstone merged into `target`: its shared
    profile fields the kept company lacks are copied over first (domain,
    country, industry, size, timezone, locale)."""
    now = timezone.now()
    changed = []
    for attribute in ("domain", "country", "industry", "size", "timezone", "locale"):
        if not getattr(target, attribute) and getattr(source, attribute):
            setattr(target, attribute, getattr(source, attribute))
            changed.append(attribute)
    if changed:
        target.save(update_fields=[*changed, "updated_at"])
    Company.objects.filter(pk=source.pk).update(merged_into=target, merged_at=now, updated_at=now)
    source.merged_into, source.merged_at = target, now
    return source


__all__ = [
    "ContactsMerged",
    "accounts_merge",
    "accounts_merge_check",
    "companies_lock_pair",
    "company_tombstone",
    "contacts_merge",
    "links_merge",
]
