"""Accounts: a company's per-product state (SPEC §2), one row per company ×
product, made when the company is first linked to the product."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import transaction

from config.errors import BadRequest

from ..models import Account, Company, CompanyStatus
from .cleaning import UNSET, merge_json
from .profile import profile_clean


def account_ensure(*, company: Company, product_id: UUID) -> Account:
    """The company's account with the product, made now if it has none
    (called whenever a link is made). Idempotent and race-safe."""
    account, _ = Account.objects.get_or_create(company=company, product_id=product_id)
    return account


def account_update(
    *,
    company: Company,
    product_id: UUID,
    metadata: dict = UNSET,
    status: str = UNSET,
    mrr: int = UNSET,
    currency: str = UNSET,
    billing_email: str | None = UNSET,
    billing_address: dict | None = UNSET,
    tax_id: str | None = UNSET,
) -> Account:
    """Change the given fields of the company's account with `product_id`
    only. `metadata` is merged key by key (a key set to None is removed);
    the billing fields and currency are checked by companies.profile."""
    changes: dict[str, Any] = profile_clean(
        {
            key: value
            for key, value in (
                ("billing_email", billing_email),
                ("billing_address", billing_address),
                ("tax_id", tax_id),
                ("currency", currency),
            )
            if value is not UNSET
        }
    )
    if status is not UNSET:
        if status not in CompanyStatus.values:
            raise BadRequest.for_field("status", f'"{status}" is not a valid choice.')
        changes["status"] = status
    if mrr is not UNSET:
        if mrr < 0:
            raise BadRequest.for_field("mrr", "Must be zero or more.")
        changes["mrr"] = mrr
    with transaction.atomic():
        account_ensure(company=company, product_id=product_id)
        # The row lock makes the metadata merge a safe read-modify-write.
        account = Account.objects.select_for_update().get(company=company, product_id=product_id)
        if metadata is not UNSET:
            changes["metadata"] = merge_json(account.metadata, metadata or {})
        for attribute, value in changes.items():
            setattr(account, attribute, value)
        if changes:
            account.save()
    return account
