"""Product links: an external org id of a product mapped to a company."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef

from config.errors import BadRequest, Conflict

from ..models import Account, Company, Contact, LinkType, Product, ProductLink
from .accounts import account_ensure
from .cleaning import clean_external_id


def already_linked_conflict(link: ProductLink) -> Conflict:
    return Conflict(
        f"externalOrgId '{link.external_org_id}' is already linked to a company in this product.",
        details={"externalOrgId": link.external_org_id, "companyId": str(link.company_id)},
    )


def link_pool_check(*, product: Product, company: Company) -> None:
    """A product links only companies of its own customer pool (SPEC §2).
    The message names neither the company's pool nor its products."""
    if company.customer_pool and company.customer_pool != product.customer_pool:
        raise BadRequest.for_field("companyId", "This company belongs to another customer pool.")


def link_insert(
    *,
    product_id: UUID,
    company: Company,
    external_org_id: str,
    external_user_id: str,
    label: str,
    link_type: str = LinkType.MANUAL,
    confidence: int | None = None,
    metadata: dict | None = None,
) -> ProductLink:
    """Insert a link (and the company's account with the product if this is
    its first link there). A company in no pool yet joins the product's.
    `link_type` says how it was made (SPEC §3); `confidence` (0–100) only for
    smart links."""
    if link_type not in LinkType.values:
        raise ValueError(f"unknown link type {link_type!r}")
    if (confidence is not None) != (link_type == LinkType.SMART):
        raise ValueError("confidence goes with smart links, and only with them")
    product = Product.objects.only("id", "customer_pool").get(pk=product_id)
    link_pool_check(product=product, company=company)
    try:
        with transaction.atomic():
            if not company.customer_pool:
                company.customer_pool = product.customer_pool
                company.save(update_fields=["customer_pool", "updated_at"])
            link = ProductLink.objects.create(
                product_id=product_id,
                company=company,
                external_org_id=external_org_id,
                external_user_id=external_user_id,
                label=label,
                link_type=link_type,
                confidence=confidence,
                metadata=metadata or {},
            )
            account_ensure(company=company, product_id=product_id)
            return link
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
    link_type: str = LinkType.MANUAL,
    confidence: int | None = None,
    metadata: dict | None = None,
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
                link_type=link_type,
                confidence=confidence,
                metadata=metadata,
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
    and accounts stay. With `delete_contacts`, the contacts of the companies
    that were linked to this product *only* are deleted (a customer another
    product still uses keeps them); with `reset_mrr`, the MRR of this
    product's accounts is set to 0."""
    in_product = ProductLink.objects.filter(company=OuterRef("pk"), product_id=product_id)
    elsewhere = ProductLink.objects.filter(company=OuterRef("pk")).exclude(product_id=product_id)
    only_here = Company.objects.filter(Exists(in_product)).exclude(Exists(elsewhere))
    contacts_deleted = mrr_reset = 0
    with transaction.atomic():
        if delete_contacts:
            _, per_model = Contact.objects.filter(company__in=only_here).delete()
            contacts_deleted = per_model.get(Contact._meta.label, 0)
        if reset_mrr:
            mrr_reset = Account.objects.filter(product_id=product_id, mrr__gt=0).update(mrr=0)
        _, per_model = ProductLink.objects.filter(product_id=product_id).delete()
        links_deleted = per_model.get(ProductLink._meta.label, 0)
    return LinksResetResult(links_deleted=links_deleted, contacts_deleted=contacts_deleted, mrr_reset=mrr_reset)
