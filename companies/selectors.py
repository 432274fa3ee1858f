"""Reads of the companies app. Every read an API key makes is scoped to its
product: a company is visible to a product when it has a link in it, and
anything not visible is NotFound — never a hint that it exists elsewhere.

This module is the one home of that rule (issue 9): every app's selectors,
services, API views and admin forms call these functions, and every "not
visible" answer is `company_not_found()`, with one message."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from config.errors import Conflict, NotFound
from config.request_context import request_is_read_var

from .error_codes import CompaniesErrorCode
from .models import Account, Company, CompanyStatus, Contact, ProductLink

COMPANY_NOT_FOUND_MESSAGE = "Company not found."


def company_not_found() -> NotFound:
    """The one answer for a company a product may not see (or that does not exist)."""
    return NotFound(COMPANY_NOT_FOUND_MESSAGE)


def company_id_parse(value) -> UUID | None:
    """A company id given as a UUID or its text; None for anything else
    (callers answer those as not found)."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def product_links(*, product_id: UUID) -> QuerySet[ProductLink]:
    """The links of one product: what makes its companies visible to it."""
    return ProductLink.objects.filter(product_id=product_id)


def companies_visible(*, product_id: UUID) -> QuerySet[Company]:
    """The companies linked to `product_id` (each once)."""
    return Company.objects.filter(Exists(product_links(product_id=product_id).filter(company=OuterRef("pk"))))


def company_is_visible(*, product_id: UUID, company_id: UUID | str) -> bool:
    """Whether the company has a link in the product (one indexed query)."""
    pk = company_id_parse(company_id)
    return pk is not None and product_links(product_id=product_id).filter(company_id=pk).exists()


def account_is_suspended(*, product_id: UUID, company_id: UUID | str) -> bool:
    """Whether the company's account with the product is suspended by staff
    (SPEC §3; one indexed query). Checks, tracks and debits refuse it."""
    pk = company_id_parse(company_id)
    return pk is not None and Account.objects.filter(
        product_id=product_id, company_id=pk, status=CompanyStatus.SUSPENDED
    ).exists()


def account_suspended_sql(*, company: str, product: str) -> str:
    """`account_is_suspended` as an SQL condition on a company and a product
    column, for statements that decide in the database (credits' one-round-trip
    debit): the same rule, in the same home."""
    table = connection.ops.quote_name(Account._meta.db_table)
    return (
        f"EXISTS (SELECT 1 FROM {table} suspended_account WHERE suspended_account.company_id = {company} "
        f"AND suspended_account.product_id = {product} AND suspended_account.status = '{CompanyStatus.SUSPENDED.value}')"
    )


def companies_visible_bulk(
    *, product_id: UUID, company_ids: Iterable[UUID], external_org_ids: Iterable[str] = ()
) -> tuple[set[UUID], dict[str, UUID]]:
    """(the visible ones of `company_ids`, external org id → company id) for
    a batch (track-batch), in one query."""
    company_ids, external_org_ids = set(company_ids), set(external_org_ids)
    visible: set[UUID] = set()
    by_external: dict[str, UUID] = {}
    if not company_ids and not external_org_ids:
        return visible, by_external
    condition = Q(company_id__in=company_ids) | Q(external_org_id__in=external_org_ids)
    for company_id, external_org_id in (
        product_links(product_id=product_id).filter(condition).values_list("company_id", "external_org_id")
    ):
        if company_id in company_ids:
            visible.add(company_id)
        if external_org_id in external_org_ids:
            by_external[external_org_id] = company_id
    return visible, by_external


def company_ids_not_visible(*, product_id: UUID, company_ids: Iterable[UUID]) -> set[UUID]:
    """Those of `company_ids` that have no link in the product, in one query
    (admin forms that act on many companies at once)."""
    wanted = {pk for pk in (company_id_parse(c) for c in company_ids) if pk is not None}
    visible, _ = companies_visible_bulk(product_id=product_id, company_ids=wanted)
    return wanted - visible


def company_list(*, product_id: UUID, q: str | None = None) -> QuerySet[Company]:
    """The product's companies by name (then id), optionally those whose name,
    domain, shortId or one of the product's external org ids contains `q`."""
    companies = companies_visible(product_id=product_id)
    q = (q or "").strip()
    if q:
        companies = companies.filter(
            Q(name__icontains=q)
            | Q(domain__icontains=q)
            | Q(short_id__icontains=q)
            | Exists(
                ProductLink.objects.filter(
                    company=OuterRef("pk"), product_id=product_id, external_org_id__icontains=q
                )
            )
        )
    return with_accounts(companies.order_by("name", "id"), product_id=product_id)


def with_accounts(companies: QuerySet[Company], *, product_id: UUID) -> QuerySet[Company]:
    """`companies` with their account with `product_id` prefetched (one
    query per page), read by the company serializer as `company.account`."""
    return companies.prefetch_related(
        Prefetch("accounts", queryset=Account.objects.filter(product_id=product_id), to_attr="product_accounts")
    )


def company_merged_into(*, company_id: UUID) -> UUID | None:
    """The company a tombstone was merged into, following chains (A merged
    into B merged into C answers C); None for a live or unknown company."""
    seen: set[UUID] = set()
    current, kept = company_id_parse(company_id), None
    while current is not None and current not in seen:
        seen.add(current)
        current = Company.objects.filter(pk=current).values_list("merged_into_id", flat=True).first()
        if current is not None:
            kept = current
    return kept


def company_merged_conflict(*, company_id: UUID, kept_company_id: UUID) -> Conflict:
    """The one answer to a write to a tombstone (SPEC §3): 409 naming the kept company."""
    return Conflict(
        "This company was merged into another one; write to the kept company.",
        details={"companyId": str(company_id), "keptCompanyId": str(kept_company_id)},
        reason=CompaniesErrorCode.COMPANY_MERGED,
    )


def company_tombstone_resolve(*, product_id: UUID, company_id: UUID | str) -> UUID | None:
    """For an id that is not visible to the product: if it names a merged
    duplicate whose kept company the product sees, the kept company's id when
    the current request only reads, and a 409 (`company_merged_conflict`)
    when it writes (SPEC §3). None otherwise (the caller answers 404). Costs
    one query, and only on the not-found path."""
    pk = company_id_parse(company_id)
    if pk is None:
        return None
    kept = company_merged_into(company_id=pk)
    if kept is None or not product_links(product_id=product_id).filter(company_id=kept).exists():
        return None
    if not request_is_read_var.get():
        raise company_merged_conflict(company_id=pk, kept_company_id=kept)
    return kept


def company_tombstones_bulk(*, product_id: UUID, company_ids: Iterable[UUID]) -> dict[UUID, UUID]:
    """`company_tombstone_resolve` for many ids that are not visible to the
    product (a batch's): {merged duplicate's id: kept company's id} for those
    whose kept company the product sees; the others are unknown (404). Two
    queries whatever the number of ids, plus one per link of a merge chain."""
    wanted = {pk for pk in (company_id_parse(c) for c in company_ids) if pk is not None}
    if not wanted:
        return {}
    merged = dict(
        Company.objects.filter(pk__in=wanted, merged_into__isnull=False).values_list("pk", "merged_into_id")
    )
    kept = {pk: company_merged_into(company_id=pk) for pk in merged}
    visible, _ = companies_visible_bulk(product_id=product_id, company_ids=set(kept.values()))
    return {pk: target for pk, target in kept.items() if target in visible}


def company_get_visible(*, product_id: UUID, company_id: UUID | str) -> Company:
    """The company if it has a link in the product; NotFound otherwise
    (including for ids that are not UUIDs). One query; callers that show the
    company add its account with `company_with_account`. A merged
    duplicate's id reads as the kept company and is 409 for writes
    (`company_tombstone_resolve`)."""
    pk = company_id_parse(company_id)
    company = companies_visible(product_id=product_id).filter(pk=pk).first() if pk else None
    if company is None:
        kept = company_tombstone_resolve(product_id=product_id, company_id=company_id) if pk else None
        if kept is None:
            raise company_not_found()
        company = Company.objects.get(pk=kept)
    return company


def company_id_get_visible(
    *, product_id: UUID, company_id: UUID | str | None = None, external_org_id: str | None = None
) -> UUID:
    """The id of a company visible to the product, given by id or by the
    product's external org id; NotFound otherwise. One query, no company row."""
    links = product_links(product_id=product_id)
    if external_org_id is not None:
        found = links.filter(external_org_id=external_org_id).values_list("company_id", flat=True).first()
    else:
        pk = company_id_parse(company_id)
        found = pk if pk is not None and links.filter(company_id=pk).exists() else None
        if found is None and pk is not None:
            found = company_tombstone_resolve(product_id=product_id, company_id=pk)
    if found is None:
        raise company_not_found()
    return found


def product_link_get(*, product_id: UUID, external_org_id: str) -> ProductLink | None:
    """The product's link for `external_org_id` (with its company), or None."""
    return (
        product_links(product_id=product_id)
        .select_related("company")
        .filter(external_org_id=(external_org_id or "").strip())
        .first()
    )


def external_org_id_for(*, product_id: UUID, company_id: UUID) -> str | None:
    """The product's own id for the company (its first link), for events a
    product receives about it; None when it is not linked to the product."""
    return (
        product_links(product_id=product_id)
        .filter(company_id=company_id)
        .order_by("created_at")
        .values_list("external_org_id", flat=True)
        .first()
    )


def company_get_by_external_org(*, product_id: UUID, external_org_id: str) -> tuple[Company, ProductLink]:
    """The company the product's `external_org_id` is linked to, with the link."""
    link = product_link_get(product_id=product_id, external_org_id=external_org_id)
    if link is None:
        raise company_not_found()
    return link.company, link


def account_get(*, company: Company, product_id: UUID) -> Account:
    """The company's account with the product. A company linked without one
    (rows written straight to the database) reads as a fresh account."""
    account = Account.objects.filter(company=company, product_id=product_id).first()
    return account or Account(company=company, product_id=product_id)


def company_with_account(*, company: Company, product_id: UUID) -> Company:
    """`company` with `.account` set to its account with `product_id`: what
    the API shows flattened into a company answer."""
    company.account = account_get(company=company, product_id=product_id)
    return company


def contact_list(*, company: Company, primary_only: bool = False) -> QuerySet[Contact]:
    """A company's contacts, the primary first, then by email."""
    contacts = Contact.objects.filter(company=company).order_by("-is_primary", "email", "id")
    if primary_only:
        contacts = contacts.filter(is_primary=True)
    return contacts
