"""Input cleaning shared by the companies services. Each cleaner returns the
stored form or raises BadRequest naming the API's camelCase field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator, validate_email
from django.utils import timezone

from config.errors import BadRequest

from ..domains import InvalidDomain, normalize_domain
from ..models import Company, Contact, ProductLink


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Default of optional update arguments: "leave as it is" (None may mean "clear")."""

# createdAt is for backfilling history; a time in the future is a mistake.
CREATED_AT_MAX_FUTURE = timedelta(minutes=5)


def clean_name(name: str, *, field_name: str = "name") -> str:
    name = (name or "").strip()
    if not name:
        raise BadRequest.for_field(field_name, "This field may not be blank.")
    if len(name) > Company._meta.get_field("name").max_length:
        raise BadRequest.for_field(field_name, "Ensure this field has no more than 200 characters.")
    return name


def clean_domain(domain: str | None, *, field_name: str = "domain") -> str:
    try:
        return normalize_domain(domain or "")
    except InvalidDomain as exc:
        raise BadRequest.for_field(field_name, str(exc)) from exc


def clean_external_id(value: str, *, field_name: str = "externalOrgId") -> str:
    value = (value or "").strip()
    if not value:
        raise BadRequest.for_field(field_name, "This field may not be blank.")
    if len(value) > ProductLink._meta.get_field("external_org_id").max_length:
        raise BadRequest.for_field(field_name, "Ensure this field has no more than 200 characters.")
    return value


def clean_email(email: str, *, field_name: str = "email") -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except DjangoValidationError as exc:
        raise BadRequest.for_field(field_name, "Enter a valid email address.") from exc
    if len(email) > Contact._meta.get_field("email").max_length:
        raise BadRequest.for_field(field_name, "Ensure this field has no more than 254 characters.")
    return email


def clean_avatar_url(url: str | None, *, field_name: str = "avatarUrl") -> str:
    url = (url or "").strip()
    if url:
        try:
            URLValidator(schemes=["http", "https"])(url)
        except DjangoValidationError as exc:
            raise BadRequest.for_field(field_name, "Enter a valid http(s) URL.") from exc
    return url


def clean_created_at(created_at: datetime | None, *, field_name: str = "createdAt") -> datetime | None:
    if created_at is None:
        return None
    if timezone.is_naive(created_at):
        raise BadRequest.for_field(field_name, "Give a time zone (e.g. a trailing Z).")
    if created_at > timezone.now() + CREATED_AT_MAX_FUTURE:
        raise BadRequest.for_field(field_name, "Must not be in the future.")
    return created_at


def merge_json(current: Mapping, changes: Mapping) -> dict:
    """Key by key; a key set to None is removed (as feature access config)."""
    merged = dict(current or {})
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
