"""Writes of the companies app. Keyword-only; each states its contract.

Errors are config.errors.* so the API renders them as the SPEC §2 envelope;
field names in BadRequest details are the API's camelCase names."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.text import slugify

from config.errors import BadRequest, Conflict

from .api_keys import forget_key, generate_key, hash_key
from .domains import InvalidDomain, normalize_domain
from .models import ApiKey, Company, CompanyStatus, Contact, Product, ProductLink
from .smart_link import (
    DEFAULT_MIN_CONFIDENCE,
    MATCHED_BY_EXTERNAL_ORG_ID,
    SmartLinkCandidate,
    smart_link_match,
)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Default of optional update arguments: "leave as it is" (None may mean "clear")."""

MAX_BULK_CONTACTS = 1000
SHORT_ID_MAX_BASE = 70
SHORT_ID_ATTEMPTS = 8
# createdAt is for backfilling history; a time in the future is a mistake.
CREATED_AT_MAX_FUTURE = timedelta(minutes=5)


# --- API keys -------------------------------------------------------------------


def api_key_create(*, product: Product, name: str, created_by=None) -> tuple[ApiKey, str]:
    """Create a key for `product`. Returns (key row, raw key); the raw key is
    never stored and cannot be shown again."""
    raw_key = generate_key()
    key = ApiKey.objects.create(
        product=product, name=name, prefix=raw_key[:10], key_hash=hash_key(raw_key), created_by=created_by
    )
    return key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key at once (also in every process's cache). Idempotent."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    transaction.on_commit(lambda: forget_key(api_key.key_hash))
    return api_key


def service_credential_create(*, product: Product, service_name: str, created_by=None):
    """Create an HMAC credential for a product's backend service. Returns
    (credential, secret); the secret is shown once (SPEC §7)."""
    from .models import ServiceCredential
    from .service_credentials import SERVICE_NAME_PATTERN, forget_service, generate_secret

    service_name = (service_name or "").strip()
    if not SERVICE_NAME_PATTERN.match(service_name):
        raise BadRequest.for_field("serviceName", "Use 1–100 letters, digits, '-' or '_'.")
    secret = generate_secret()
    credential = ServiceCredential.objects.create(
        product=product, service_name=service_name, prefix=secret[:10], secret=secret, created_by=created_by
    )
    transaction.on_commit(lambda: forget_service(service_name))
    return credential, secret


def service_credential_revoke(*, credential):
    """Revoke at once (the cached lookup is cleared). Idempotent."""
    from .service_credentials import forget_service

    if credential.revoked_at is None:
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["revoked_at"])
    transaction.on_commit(lambda: forget_service(credential.service_name))
    return credential


# --- Input cleaning shared by the services -----------------------------------------


def _clean_name(name: str, *, field_name: str = "name") -> str:
    name = (name or "").strip()
    if not name:
        raise BadRequest.for_field(field_name, "This field may not be blank.")
    if len(name) > Company._meta.get_field("name").max_length:
        raise BadRequest.for_field(field_name, "Ensure this field has no more than 200 characters.")
    return name


def _clean_domain(domain: str | None, *, field_name: str = "domain") -> str:
    try:
        return normalize_domain(domain or "")
    except InvalidDomain as exc:
        raise BadRequest.for_field(field_name, str(exc)) from exc


def _clean_external_id(value: str, *, field_name: str = "externalOrgId") -> str:
    value = (value or "").strip()
    if not value:
        raise BadRequest.for_field(field_name, "This field may not be blank.")
    if len(value) > ProductLink._meta.get_field("external_org_id").max_length:
        raise BadRequest.for_field(field_name, "Ensure this field has no more than 200 characters.")
    return value


def _clean_email(email: str, *, field_name: str = "email") -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except DjangoValidationError as exc:
        raise BadRequest.for_field(field_name, "Enter a valid email address.") from exc
    if len(email) > Contact._meta.get_field("email").max_length:
        raise BadRequest.for_field(field_name, "Ensure this field has no more than 254 characters.")
    return email


def _clean_avatar_url(url: str | None, *, field_name: str = "avatarUrl") -> str:
    url = (url or "").strip()
    if url:
        try:
            URLValidator(schemes=["http", "https"])(url)
        except DjangoValidationError as exc:
            raise BadRequest.for_field(field_name, "Enter a valid http(s) URL.") from exc
    return url


def _clean_created_at(created_at: datetime | None, *, field_name: str = "createdAt") -> datetime | None:
    if created_at is None:
        return None
    if timezone.is_naive(created_at):
        raise BadRequest.for_field(field_name, "Give a time zone (e.g. a trailing Z).")
    if created_at > timezone.now() + CREATED_AT_MAX_FUTURE:
        raise BadRequest.for_field(field_name, "Must not be in the future.")
    return created_at


def _merge_json(current: Mapping, changes: Mapping) -> dict:
    """Key by key; a key set to None is removed (as feature access config)."""
    merged = dict(current or {})
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


# --- Companies -------------------------------------------------------------------


def short_id_base(name: str) -> str:
    return slugify(name)[:SHORT_ID_MAX_BASE].strip("-") or "company"


def _next_free_short_id(base: str) -> str:
    """`base`, else `base-N` with N one past the highest taken suffix."""
    taken = set(
        Company.objects.filter(short_id__regex=rf"^{re.escape(base)}(-[0-9]+)?$").values_list("short_id", flat=True)
    )
    if base not in taken:
        return base
    suffixes = [int(s.rsplit("-", 1)[1]) for s in taken if s != base and s.rsplit("-", 1)[1].isdigit()]
    return f"{base}-{max(suffixes, default=1) + 1}"


def company_insert(*, company: Company) -> Company:
    """Save a new, already validated Company, giving it a unique shortId from
    its name when it has none. Race-safe: two inserts that pick the same
    shortId meet the unique constraint; the loser retries with the next one."""
    if company.short_id:
        company.save(force_insert=True)
        return company
    base = short_id_base(company.name)
    for attempt in range(SHORT_ID_ATTEMPTS):
        candidate = _next_free_short_id(base)
        if attempt >= SHORT_ID_ATTEMPTS // 2:
            # Heavy contention on one name: stop guessing the sequence.
            candidate = f"{base}-{secrets.token_hex(3)}"
        company.short_id = candidate
        try:
            with transaction.atomic():
                company.save(force_insert=True)
            return company
        except IntegrityError:
            if not Company.objects.filter(short_id=candidate).exists():
                raise  # some other constraint: not ours to retry
    raise Conflict("Could not allocate a unique shortId; retry.")


def company_create_unlinked(
    *,
    name: str,
    domain: str | None = None,
    status: str = CompanyStatus.ACTIVE,
    mrr: int = 0,
    created_at: datetime | None = None,
    metadata: dict | None = None,
) -> Company:
    """Create a company that no product is linked to yet (admin, imports)."""
    company = Company(
        name=_clean_name(name),
        domain=_clean_domain(domain),
        status=status,
        mrr=mrr,
        metadata=metadata or {},
        created_at=_clean_created_at(created_at) or timezone.now(),
    )
    return company_insert(company=company)


def _already_linked(link: ProductLink) -> Conflict:
    return Conflict(
        f"externalOrgId '{link.external_org_id}' is already linked to a company in this product.",
        details={"externalOrgId": link.external_org_id, "companyId": str(link.company_id)},
    )


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
) -> Company:
    """Create a company, link it to `product_id` as `external_org_id`, and add
    the contact (as primary) — all or nothing. 409 if the external org id is
    already linked in this product; the unique constraint decides races."""
    name = _clean_name(name)
    domain = _clean_domain(domain)
    external_org_id = _clean_external_id(external_org_id)
    created_at = _clean_created_at(created_at)
    if contact_email:
        contact_email = _clean_email(contact_email, field_name="contactEmail")
    existing = ProductLink.objects.filter(product_id=product_id, external_org_id=external_org_id).first()
    if existing is not None:
        raise _already_linked(existing)
    with transaction.atomic():
        company = company_insert(
            company=Company(
                name=name, domain=domain, metadata=metadata or {}, created_at=created_at or timezone.now()
            )
        )
        _link_insert(
            product_id=product_id,
            company=company,
            external_org_id=external_org_id,
            external_user_id=external_user_id or "",
            label=label or "",
        )
        if contact_email:
            contact_upsert(company=company, email=contact_email, name=contact_name, is_primary=True)
    return company


def company_update(
    *,
    company: Company,
    name: str = UNSET,
    domain: str | None = UNSET,
    created_at: datetime = UNSET,
    metadata: dict = UNSET,
    status: str = UNSET,
    mrr: int = UNSET,
) -> Company:
    """Change the given fields only. `metadata` is merged key by key (a key
    set to None is removed); the shortId never changes with the name."""
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = _clean_name(name)
    if domain is not UNSET:
        changes["domain"] = _clean_domain(domain)
    if created_at is not UNSET:
        if created_at is None:
            raise BadRequest.for_field("createdAt", "This field may not be null.")
        changes["created_at"] = _clean_created_at(created_at)
    if status is not UNSET:
        if status not in CompanyStatus.values:
            raise BadRequest.for_field("status", f'"{status}" is not a valid choice.')
        changes["status"] = status
    if mrr is not UNSET:
        if mrr < 0:
            raise BadRequest.for_field("mrr", "Must be zero or more.")
        changes["mrr"] = mrr
    with transaction.atomic():
        # The row lock makes the metadata merge a safe read-modify-write.
        locked = Company.objects.select_for_update().get(pk=company.pk)
        if metadata is not UNSET:
            changes["metadata"] = _merge_json(locked.metadata, metadata or {})
        for attribute, value in changes.items():
            setattr(locked, attribute, value)
        locked.save()
    return locked


# --- Product links ------------------------------------------------------------------


def _link_insert(
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
        raise _already_linked(existing) from None


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
    external_org_id = _clean_external_id(external_org_id)
    existing = ProductLink.objects.filter(product_id=product_id, external_org_id=external_org_id).first()
    if existing is None:
        try:
            link = _link_insert(
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
        raise _already_linked(existing)
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


# --- Contacts ---------------------------------------------------------------------------


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
            value = _merge_json(contact.metadata, value or {})
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
        values["avatar_url"] = _clean_avatar_url(avatar_url, field_name=f"{prefix}avatarUrl")
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
    email = _clean_email(email)
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
    contact.email = _clean_email(contact.email)
    contact.avatar_url = _clean_avatar_url(contact.avatar_url)
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
    for index, item in enumerate(items):
        prefix = f"contacts.{index}."
        try:
            email = _clean_email(item.get("email", ""), field_name=f"{prefix}email")
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
        if email in first_index_of:
            errors.setdefault(f"{prefix}email", []).append(
                f"Duplicate of contacts.{first_index_of[email]}.email."
            )
            continue
        first_index_of[email] = index
        if values.get("is_primary"):
            primary_indexes.append(index)
        cleaned.append((email, values))
    if len(primary_indexes) > 1:
        for index in primary_indexes[1:]:
            errors.setdefault(f"contacts.{index}.isPrimary", []).append("Only one contact can be primary.")
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


# --- Smart link ----------------------------------------------------------------------------


class SmartLinkStatus:
    ALREADY_LINKED = "already_linked"
    LINKED = "linked"
    SUGGESTIONS = "suggestions"
    NO_MATCH = "no_match"


@dataclass
class SmartLinkResult:
    status: str
    company: Company | None = None
    confidence: int | None = None
    matched_by: str | None = None
    suggestions: list[SmartLinkCandidate] = field(default_factory=list)
    link: ProductLink | None = None


def company_smart_link(
    *,
    product_id: UUID,
    external_org_id: str,
    company_name: str | None = None,
    domain: str | None = None,
    emails: Iterable[str] = (),
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    external_user_id: str = "",
) -> SmartLinkResult:
    """Find the company an external org of this product belongs to and link
    it when there is one clear winner at or above `min_confidence` (0–1).
    See companies.smart_link for the scores and the clear-winner rule."""
    external_org_id = _clean_external_id(external_org_id)
    if not 0 <= min_confidence <= 1:
        raise BadRequest.for_field("minConfidence", "Must be between 0 and 1.")
    domain = _clean_domain(domain, field_name="hints.domain")
    emails = [_clean_email(e, field_name=f"hints.emails.{i}") for i, e in enumerate(emails or [])]

    link = ProductLink.objects.select_related("company").filter(
        product_id=product_id, external_org_id=external_org_id
    ).first()
    if link is not None:
        return _already_linked_result(link)
    match = smart_link_match(
        company_name=(company_name or "").strip(), domain=domain, emails=emails, min_confidence=min_confidence
    )
    if match.winner is not None:
        winner = match.winner
        try:
            link, _ = product_link_create(
                product_id=product_id,
                company=winner.company,
                external_org_id=external_org_id,
                external_user_id=external_user_id,
            )
        except Conflict:
            # Another request linked this external id meanwhile: report that.
            link = ProductLink.objects.select_related("company").get(
                product_id=product_id, external_org_id=external_org_id
            )
            return _already_linked_result(link)
        return SmartLinkResult(
            status=SmartLinkStatus.LINKED,
            company=winner.company,
            confidence=winner.confidence,
            matched_by=winner.matched_by,
            link=link,
        )
    if match.candidates:
        return SmartLinkResult(status=SmartLinkStatus.SUGGESTIONS, suggestions=match.suggestions)
    return SmartLinkResult(status=SmartLinkStatus.NO_MATCH)


def _already_linked_result(link: ProductLink) -> SmartLinkResult:
    return SmartLinkResult(
        status=SmartLinkStatus.ALREADY_LINKED,
        company=link.company,
        confidence=100,
        matched_by=MATCHED_BY_EXTERNAL_ORG_ID,
        link=link,
    )
