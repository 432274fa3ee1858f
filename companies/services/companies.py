"""Company writes: create (with its link, account and contact), update, shortIds."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from config.errors import BadRequest, Conflict

from ..models import Company, LinkType, Product, ProductLink
from .accounts import account_update
from .cleaning import UNSET, clean_created_at, clean_domain, clean_email, clean_external_id, clean_name
from .contacts import contact_upsert
from .links import already_linked_conflict, link_insert
from .profile import profile_clean, profile_split

SHORT_ID_MAX_BASE = 70
SHORT_ID_ATTEMPTS = 8


def short_id_base(name: str) -> str:
    return slugify(name)[:SHORT_ID_MAX_BASE].strip("-") or "company"


def _next_free_short_id(base: str, *, customer_pool: str) -> str:
    """`base`, else `base-N` with N one past the highest taken suffix in the pool."""
    taken = set(
        Company.objects.filter(
            customer_pool=customer_pool, short_id__regex=rf"^{re.escape(base)}(-[0-9]+)?$"
        ).values_list("short_id", flat=True)
    )
    if base not in taken:
        return base
    suffixes = [int(s.rsplit("-", 1)[1]) for s in taken if s != base and s.rsplit("-", 1)[1].isdigit()]
    return f"{base}-{max(suffixes, default=1) + 1}"


def company_insert(*, company: Company) -> Company:
    """Save a new, already validated Company (its `customer_pool` set),
    giving it a shortId from its name, unique in its pool, when it has none.
    Race-safe: two inserts that pick the same shortId meet the unique
    constraint; the loser retries with the next one."""
    if company.short_id:
        company.save(force_insert=True)
        return company
    base = short_id_base(company.name)
    for attempt in range(SHORT_ID_ATTEMPTS):
        candidate = _next_free_short_id(base, customer_pool=company.customer_pool)
        if attempt >= SHORT_ID_ATTEMPTS // 2:
            # Heavy contention on one name: stop guessing the sequence.
            candidate = f"{base}-{secrets.token_hex(3)}"
        company.short_id = candidate
        try:
            with transaction.atomic():
                company.save(force_insert=True)
            return company
        except IntegrityError:
            if not Company.objects.filter(customer_pool=company.customer_pool, short_id=candidate).exists():
                raise  # some other constraint: not ours to retry
    raise Conflict("Could not allocate a unique shortId; retry.")


def company_create(
    *,
    product_id: UUID,
    name: str,
    domain: str | None = None,
    external_org_id: str,
    external_user_id: str = "",
    contact_email: str | None = None,
    contact_name: str | None = None,
    created_at: datetime | None = None,
    metadata: dict | None = None,
    label: str = "",
    profile: dict[str, Any] | None = None,
) -> Company:
    """Create a company in the product's customer pool, link it to
    `product_id` as `external_org_id` (which makes its account there, with
    `metadata`), and add the contact (as primary) — all or nothing. 409 if
    the external org id is already linked in this product; the unique
    constraint decides races. `profile`: profile and billing fields by model
    attribute (services.profile.PROFILE_FIELDS); the link's type is
    `created`."""
    company_profile, account_billing = profile_split(profile_clean(profile or {}))
    name = clean_name(name)
    domain = clean_domain(domain)
    external_org_id = clean_external_id(external_org_id)
    created_at = clean_created_at(created_at)
    if contact_email:
        contact_email = clean_email(contact_email, field_name="contactEmail")
    existing = ProductLink.objects.filter(product_id=product_id, external_org_id=external_org_id).first()
    if existing is not None:
        raise already_linked_conflict(existing)
    customer_pool = Product.objects.values_list("customer_pool", flat=True).get(pk=product_id)
    with transaction.atomic():
        company = company_insert(
            company=Company(
                customer_pool=customer_pool,
                name=name,
                domain=domain,
                created_at=created_at or timezone.now(),
                **company_profile,
            )
        )
        link_insert(
            product_id=product_id,
            company=company,
            external_org_id=external_org_id,
            external_user_id=external_user_id or "",
            label=label or "",
            link_type=LinkType.CREATED,
        )
        if metadata or account_billing:
            account_update(company=company, product_id=product_id, metadata=metadata or UNSET, **account_billing)
        if contact_email:
            contact_upsert(company=company, email=contact_email, name=contact_name, is_primary=True)
    return company


def company_update(
    *,
    company: Company,
    product_id: UUID | None = None,
    name: str = UNSET,
    domain: str | None = UNSET,
    created_at: datetime = UNSET,
    metadata: dict = UNSET,
    status: str = UNSET,
    mrr: int = UNSET,
    profile: dict[str, Any] | None = None,
) -> Company:
    """Change the given fields only: name, domain, createdAt and the
    profile (country, industry, size, timezone, locale) on the shared
    company; metadata, status, MRR and the billing fields on its account
    with `product_id` (see account_update), never another product's. The
    shortId never changes with the name."""
    company_profile, account_billing = profile_split(profile_clean(profile or {}))
    changes: dict[str, Any] = dict(company_profile)
    if name is not UNSET:
        changes["name"] = clean_name(name)
    if domain is not UNSET:
        changes["domain"] = clean_domain(domain)
    if created_at is not UNSET:
        if created_at is None:
            raise BadRequest.for_field("createdAt", "This field may not be null.")
        changes["created_at"] = clean_created_at(created_at)
    account_changes = {
        key: value for key, value in (("metadata", metadata), ("status", status), ("mrr", mrr)) if value is not UNSET
    }
    account_changes.update(account_billing)
    if account_changes and product_id is None:
        raise TypeError("metadata, status, mrr and billing fields are per product: give product_id")
    with transaction.atomic():
        if changes:
            company = Company.objects.select_for_update().get(pk=company.pk)
            for attribute, value in changes.items():
                setattr(company, attribute, value)
            company.save()
        if account_changes:
            account_update(company=company, product_id=product_id, **account_changes)
    return company
