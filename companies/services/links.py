"""Product links: an external org id of a product mapped to a company."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef

from config.errors import Conflict

from ..models import Company, Contact, ProductLink
from .cleaning import clean_external_id


def already_linked_conflict(link: ProductLink) -> Conflict:
    return Conflict(
        f"externalOrgId '{link.external_org_id}' is already linked to a company in this product.",
        details={"externalOrgId": link.external_org_id, "companyId": str(link.company_id)},
    )


def link_insert(
    *, product_id: UUID, company: Company, external_org_id: str, external_user_id: str, label: str
) -> ProductLink:
    try:
        with transaction.atomic():
            return ProductLink.objects.create(
                product_id=product_id,
                company=company,
                external_org_id=external_org_id,
                external_user_id=external_user_id,
                label=label,
            )
    except IntegrityError:
        existing = ProductLink.objects.filter(product_id=product_id, external_org_id=external_org_id).first()
        if existing is None:
            raise
        raise already_linked_conflict(existing) from None


def product_link_create(
    *,
    product_id: UUID,
    company: Company,
    external_org_id: str,
    external_user_id: str = "",
    label: str = "",
) -> tuple[ProductLink, bool]:
    """Link `external_org_id` of the product to `company`. Returns (link,
    created). Idempotent when it already points at this company (the link is
    returned unchanged); 409 when it points at another company."""
    external_org_id = clean_external_id(external_org_id)
    existing = ProductLink.objects.filter(product_id=product_id, external_org_id=external_org_id).first()
    if existing is None:
        try:
            link = link_insert(
                product_id=product_id,
                company=company,
                external_org_id=external_org_id,
                external_user_id=external_user_id or "",
                label=label or "",
            )
            return link, True
        except Conflict:
            existing = ProductLink.objects.get(product_id=product_id, external_org_id=external_org_id)
    if existing.company_id != company.pk:
        raise already_linked_conflict(existing)
    return existing, False


@dataclass(frozen=True)
class LinksResetResult:
    links_deleted: int
    contacts_deleted: int
    mrr_reset: int


def product_links_reset(
    *, product_id: UUID, delete_contacts: bool = False, reset_mrr: bool = False
) -> LinksResetResult:
    """Delete every link of this product (and only this product). Companies
    stay. With `delete_contacts` / `reset_mrr`, the contacts / MRR of the
    companies that were linked to this product *only* are deleted / set to 0:
    a customer that another product still uses keeps both."""
    in_product = ProductLink.objects.filter(company=OuterRef("pk"), product_id=product_id)
    elsewhere = ProductLink.objects.filter(company=OuterRef("pk")).exclude(product_id=product_id)
    only_here = Company.objects.filter(Exists(in_product)).exclude(Exists(elsewhere))
    contacts_deleted = mrr_reset = 0
    with transaction.atomic():
        if delete_contacts:
            _, per_model = Contact.objects.filter(company__in=only_here).delete()
            contacts_deleted = per_model.get(Contact._meta.label, 0)
        if reset_mrr:
            mrr_reset = only_here.filter(mrr__gt=0).update(mrr=0)
        _, per_model = ProductLink.objects.filter(product_id=product_id).delete()
        links_deleted = per_model.get(ProductLink._meta.label, 0)
    return LinksResetResult(links_deleted=links_deleted, contacts_deleted=contacts_deleted, mrr_reset=mrr_reset)
