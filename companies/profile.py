"""The one home of the customer profile rules (SPEC §3): ISO 3166 countries,
ISO 4217 currencies, IANA time zones, locales, company sizes and billing
addresses. The API serializers (choices and patterns, so the OpenAPI schema
says exactly what is accepted), the admin forms (model field validators) and
the services (`companies.services.profile`) all check with these.

Countries and currencies come from `pycountry` (the ISO tables as Debian's
iso-codes keeps them), time zones from the system's IANA database
(`zoneinfo.available_timezones()`)."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from functools import lru_cache

import pycountry
from django.core.exceptions import ValidationError
from django.db import models


class CompanySize(models.TextChoices):
    STARTUP = "startup", "Startup"
    SMB = "smb", "SMB"
    MID_MARKET = "mid_market", "Mid-market"
    ENTERPRISE = "enterprise", "Enterprise"


# Stored forms: country upper case ("DE"), currency lower case ("eur", like
# every amount's currency in this project), time zone as IANA spells it.
COUNTRY_CODES: tuple[str, ...] = tuple(sorted(country.alpha_2 for country in pycountry.countries))
CURRENCY_CODES: tuple[str, ...] = tuple(sorted(currency.alpha_3.lower() for currency in pycountry.currencies))
TIME_ZONES: tuple[str, ...] = tuple(
    sorted(name for name in zoneinfo.available_timezones() if "/" in name or name == "UTC")
)
# BCP 47 language[-Region]: a two- or three-letter language, optionally a
# region (two letters or a UN M.49 number). Shape only: "en", "de-AT", "es-419".
LOCALE_PATTERN = r"^[a-z]{2,3}(-([A-Z]{2}|[0-9]{3}))?$"
_LOCALE_RE = re.compile(LOCALE_PATTERN)

MAX_INDUSTRY = 100
MAX_LOCALE = 10
MAX_TAX_ID = 64
BILLING_ADDRESS_LIMITS = {"line1": 200, "line2": 200, "city": 100, "postalCode": 20, "state": 100, "country": 2}
BILLING_ADDRESS_FIELDS = tuple(BILLING_ADDRESS_LIMITS)


@lru_cache(maxsize=1)
def _sets() -> tuple[frozenset, frozenset, frozenset]:
    return frozenset(COUNTRY_CODES), frozenset(CURRENCY_CODES), frozenset(TIME_ZONES)


def country_error(value: str) -> str | None:
    if value not in _sets()[0]:
        return f'"{value}" is not an ISO 3166-1 alpha-2 country code (upper case, e.g. "DE").'
    return None


def currency_error(value: str) -> str | None:
    if value not in _sets()[1]:
        return f'"{value}" is not an ISO 4217 currency code (lower case, e.g. "eur").'
    return None


def timezone_error(value: str) -> str | None:
    if value not in _sets()[2]:
        return f'"{value}" is not an IANA time zone (e.g. "Europe/Berlin").'
    return None


def locale_error(value: str) -> str | None:
    if len(value) > MAX_LOCALE or not _LOCALE_RE.match(value):
        return f'"{value}" is not a locale such as "en", "de-AT" or "es-419".'
    return None


def size_error(value: str) -> str | None:
    if value not in CompanySize.values:
        return f'"{value}" is not a valid choice.'
    return None


def billing_address_errors(value) -> dict[str, list[str]] | list[str] | None:
    """Errors of a billing address object, by part (None when valid). Every
    part is an optional string; `country` an ISO 3166 code."""
    if not isinstance(value, Mapping):
        return ["Expected an object."]
    errors: dict[str, list[str]] = {}
    for key, part in value.items():
        if key not in BILLING_ADDRESS_LIMITS:
            errors[key] = ["Unknown field."]
        elif part is not None and not isinstance(part, str):
            errors[key] = ["Not a valid string."]
        elif part and len(part) > BILLING_ADDRESS_LIMITS[key]:
            errors[key] = [f"Ensure this field has no more than {BILLING_ADDRESS_LIMITS[key]} characters."]
        elif key == "country" and part and (message := country_error(part)):
            errors[key] = [message]
    return errors or None


def billing_address_clean(value: Mapping | None) -> dict:
    """The stored form of a valid address: stripped parts, empty ones left out."""
    return {key: part.strip() for key, part in (value or {}).items() if isinstance(part, str) and part.strip()}


def _django_validator(check):
    def validate(value):
        if value in ("", None):
            return
        message = check(value)
        if message:
            raise ValidationError(message)

    validate.__name__ = validate.__qualname__ = f"validate_{check.__name__.removesuffix('_error')}"
    return validate


validate_country = _django_validator(country_error)
validate_currency = _django_validator(currency_error)
validate_timezone = _django_validator(timezone_error)
validate_locale = _django_validator(locale_error)


def validate_billing_address(value) -> None:
    if value in (None, {}):
        return
    errors = billing_address_errors(value)
    if errors:
        if isinstance(errors, dict):
            raise ValidationError([f"{key}: {' '.join(messages)}" for key, messages in errors.items()])
        raise ValidationError(errors)
