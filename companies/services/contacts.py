"""Contact writes: upsert, whole-form save (admin), bulk upsert."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from config.errors import BadRequest

from ..models import Company, Contact
from .cleaning import clean_avatar_url, clean_email, merge_json

MAX_BULK_CONTACTS = 1000


def _lock_company(company: Company) -> None:
    # Every contact write of a company takes this row lock first, so that
    # "at most one primary" and "one contact per email" are decided one
    # writer at a time instead of by a constraint error mid-transaction.
    Company.objects.select_for_update().filter(pk=company.pk).values_list("pk", flat=True).first()


def _demote_primary(company: Company, *, except_pk: UUID | None = None) -> None:
    Contact.objects.filter(company=company, is_primary=True).exclude(pk=except_pk).update(
        is_primary=False, updated_at=timezone.now()
    )


def _contact_apply(contact: Contact, values: Mapping[str, Any]) -> bool:
    """Apply cleaned values; merge metadata. Returns whether anything changed."""
    changed = False
    for attribute, value in values.items():
        if attribute == "metadata":
            value = merge_json(contact.metadata, value or {})
        if getattr(contact, attribute) != value:
            setattr(contact, attribute, value)
            changed = True
    return changed


def _contact_values(
    *, name=None, role=None, is_primary=None, avatar_url=None, metadata=None, prefix: str = ""
) -> dict[str, Any]:
    """The fields a contact write sets, cleaned; None means "leave as it is"."""
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name.strip()
    if role is not None:
        values["role"] = role.strip()
    if is_primary is not None:
        values["is_primary"] = bool(is_primary)
    if avatar_url is not None:
        values["avatar_url"] = clean_avatar_url(avatar_url, field_name=f"{prefix}avatarUrl")
    if metadata is not None:
        values["metadata"] = metadata
    return values


def contact_upsert(
    *,
    company: Company,
    email: str,
    name: str | None = None,
    role: str | None = None,
    is_primary: bool | None = None,
    avatar_url: str | None = None,
    metadata: dict | None = None,
) -> tuple[Contact, bool]:
    """Create or update the contact (company, lower-cased email). Returns
    (contact, created). None leaves a field unchanged (a new contact is not
    primary unless asked); `metadata` is merged. Making a contact primary
    demotes the previous primary in the same transaction."""
    email = clean_email(email)
    values = _contact_values(
        name=name, role=role, is_primary=is_primary, avatar_url=avatar_url, metadata=metadata
    )
    with transaction.atomic():
        _lock_company(company)
        contact = Contact.objects.filter(company=company, email=email).first()
        created = contact is None
        if created:
            contact = Contact(company=company, email=email)
        if values.get("is_primary"):
            _demote_primary(company, except_pk=None if created else contact.pk)
        changed = _contact_apply(contact, values)
        if created:
            contact.save(force_insert=True)
        elif changed:
            contact.save()
    return contact, created


def contact_save(*, contact: Contact) -> Contact:
    """Save a contact edited as a whole (the admin's forms): email
    lower-cased and checked free in the company; if it is primary, the
    previous primary is demoted in the same transaction."""
    contact.email = clean_email(contact.email)
    contact.avatar_url = clean_avatar_url(contact.avatar_url)
    with transaction.atomic():
        _lock_company(contact.company)
        taken = Contact.objects.filter(company_id=contact.company_id, email=contact.email)
        if not contact._state.adding:
            taken = taken.exclude(pk=contact.pk)
        if taken.exists():
            raise BadRequest.for_field("email", "This company already has a contact with this email.")
        if contact.is_primary:
            _demote_primary(contact.company, except_pk=None if contact._state.adding else contact.pk)
        contact.save()
    return contact


@dataclass(frozen=True)
class ContactSetMember:
    index: int
    email: str  # cleaned
    is_primary: bool


def contacts_set_errors(*, members: Iterable[ContactSetMember]) -> dict[str, list[str]]:
    """The rules a set of one company's contacts written together must keep:
    each email once, at most one primary. Errors are keyed
    `contacts.<index>.email` / `contacts.<index>.isPrimary` (the bulk API
    and the admin's contacts inline both call this)."""
    errors: dict[str, list[str]] = {}
    first_index_of: dict[str, int] = {}
    primaries: list[int] = []
    for member in members:
        if member.email in first_index_of:
            errors.setdefault(f"contacts.{member.index}.email", []).append(
                f"Duplicate of contacts.{first_index_of[member.email]}.email."
            )
            continue
        first_index_of[member.email] = member.index
        if member.is_primary:
            primaries.append(member.index)
    for index in primaries[1:]:
        errors.setdefault(f"contacts.{index}.isPrimary", []).append("Only one contact can be primary.")
    return errors


@dataclass
class ContactsBulkResult:
    created: int = 0
    updated: int = 0
    # (contact, is_new) in the order of the input.
    contacts: list[tuple[Contact, bool]] = field(default_factory=list)


def contacts_bulk_upsert(*, company: Company, contacts: Iterable[Mapping[str, Any]]) -> ContactsBulkResult:
    """Upsert up to 1000 contacts of one company, all or nothing. Each item
    has `email` and any of `name, role, is_primary, avatar_url, metadata`
    (absent = unchanged, as contact_upsert). Everything is validated before
    anything is written; at most one item may be primary. A constant number
    of queries whatever the batch size."""
    items = list(contacts)
    if len(items) > MAX_BULK_CONTACTS:
        raise BadRequest.for_field("contacts", f"At most {MAX_BULK_CONTACTS} contacts per call.")
    cleaned: list[tuple[str, dict[str, Any]]] = []
    errors: dict[str, list[str]] = {}
    first_index_of: dict[str, int] = {}
    primary_indexes: list[int] = []
    members: list[ContactSetMember] = []
    for index, item in enumerate(items):
        prefix = f"contacts.{index}."
        try:
            email = clean_email(item.get("email", ""), field_name=f"{prefix}email")
            values = _contact_values(
                name=item.get("name"),
                role=item.get("role"),
                is_primary=item.get("is_primary"),
                avatar_url=item.get("avatar_url"),
                metadata=item.get("metadata"),
                prefix=prefix,
            )
        except BadRequest as exc:
            for name, messages in exc.details.get("fields", {}).items():
                errors.setdefault(name, []).extend(messages)
            continue
        members.append(ContactSetMember(index=index, email=email, is_primary=bool(values.get("is_primary"))))
        if email in first_index_of:
            continue  # reported by contacts_set_errors
        first_index_of[email] = index
        if values.get("is_primary"):
            primary_indexes.append(index)
        cleaned.append((email, values))
    for name, messages in contacts_set_errors(members=members).items():
        errors.setdefault(name, []).extend(messages)
    if errors:
        first = next(iter(errors))
        raise BadRequest(f"{first}: {errors[first][0]}", details={"fields": errors})

    result = ContactsBulkResult()
    with transaction.atomic():
        _lock_company(company)
        existing = {c.email: c for c in Contact.objects.filter(company=company, email__in=first_index_of)}
        primary_email = cleaned[primary_indexes[0]][0] if primary_indexes else None
        if primary_email is not None:
            keep = existing[primary_email].pk if primary_email in existing else None
            _demote_primary(company, except_pk=keep)
            # Keep the loaded rows in step, or bulk_update would write the
            # old primary flag back.
            for contact in existing.values():
                if contact.pk != keep:
                    contact.is_primary = False
        to_create: list[Contact] = []
        to_update: list[Contact] = []
        now = timezone.now()
        for email, values in cleaned:
            contact = existing.get(email)
            is_new = contact is None
            if is_new:
                contact = Contact(company=company, email=email, created_at=now, updated_at=now)
                _contact_apply(contact, values)
                to_create.append(contact)
            elif _contact_apply(contact, values):
                contact.updated_at = now
                to_update.append(contact)
            result.contacts.append((contact, is_new))
        if to_update:
            Contact.objects.bulk_update(
                to_update, ["name", "role", "is_primary", "avatar_url", "metadata", "updated_at"], batch_size=500
            )
        if to_create:
            Contact.objects.bulk_create(to_create, batch_size=500)
    result.created = len(to_create)
    result.updated = len(result.contacts) - result.created
    return result
