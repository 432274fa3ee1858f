"""Reads of the companies app. Every read an API key makes is scoped to its
product: a company is visible to a product when it has a link in it, and
anything not visible is NotFound — never a hint that it exists elsewhere."""

from __future__ import annotations

from uuid import UUID

from django.db.models import Exists, OuterRef, Q, QuerySet

from config.errors import NotFound

from .models import Company, Contact, ProductLink


def _as_uuid(value) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def companies_visible(*, product_id: UUID) -> QuerySet[Company]:
    """The companies linked to `product_id` (each once)."""
    return Company.objects.filter(
        Exists(ProductLink.objects.filter(company=OuterRef("pk"), product_id=product_id))
    )


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
    return companies.order_by("name", "id")


def company_get_visible(*, product_id: UUID, company_id: UUID | str) -> Company:
    """The company if it has a link in the product; NotFound otherwise
    (including for ids that are not UUIDs)."""
    pk = _as_uuid(company_id)
    company = companies_visible(product_id=product_id).filter(pk=pk).first() if pk else None
    if company is None:
        raise NotFound("Company not found.")
    return company


def company_get_by_external_org(*, product_id: UUID, external_org_id: str) -> tuple[Company, ProductLink]:
    """The company the product's `external_org_id` is linked to, with the link."""
    link = (
        ProductLink.objects.select_related("company")
        .filter(product_id=product_id, external_org_id=(external_org_id or "").strip())
        .first()
    )
    if link is None:
        raise NotFound("No company is linked to this externalOrgId.")
    return link.company, link


def contact_list(*, company: Company, primary_only: bool = False) -> QuerySet[Contact]:
    """A company's contacts, the primary first, then by email."""
    contacts = Contact.objects.filter(company=company).order_by("-is_primary", "email", "id")
    if primary_only:
        contacts = contacts.filter(is_primary=True)
    return contacts
