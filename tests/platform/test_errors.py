"""One error hierarchy (issue 9 item 8): every envelope status has its own
class; domain errors of the apps are inside it, with their app's reason code."""

from __future__ import annotations

import pytest

from companies.domains import InvalidDomain, normalize_domain
from companies.error_codes import CompaniesErrorCode
from config import errors
from config.errors import ApplicationError, BadRequest, ErrorCode
from entitlements.catalog import CatalogError
from entitlements.error_codes import EntitlementsErrorCode
from metering.error_codes import MeteringErrorCode
from metering.models import AppendOnlyError


def test_every_envelope_code_has_exactly_one_class():
    classes = [
        cls for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, ApplicationError) and cls is not errors.StripeNotConfigured
    ]
    codes = [cls.code for cls in classes]
    assert sorted(codes) == sorted(ErrorCode), "one class per envelope code"
    statuses = {cls.code: cls.http_status for cls in classes}
    assert statuses[ErrorCode.UNSUPPORTED_MEDIA_TYPE] == 415
    assert statuses[ErrorCode.PAYLOAD_TOO_LARGE] == 413
    assert statuses[ErrorCode.METHOD_NOT_ALLOWED] == 405
    assert statuses[ErrorCode.NOT_ACCEPTABLE] == 406


def test_domain_errors_are_inside_the_hierarchy_with_a_reason():
    with pytest.raises(InvalidDomain) as invalid:
        normalize_domain("not a domain")
    assert isinstance(invalid.value, BadRequest) and isinstance(invalid.value, ValueError)
    assert invalid.value.details["reason"] == CompaniesErrorCode.INVALID_DOMAIN

    catalog = CatalogError(["tiers[1].features.sso: unknown feature", "broken"])
    assert isinstance(catalog, BadRequest)
    assert catalog.details["fields"] == {"tiers[1].features.sso": ["unknown feature"], "catalog": ["broken"]}
    assert catalog.details["reason"] == EntitlementsErrorCode.CATALOG_INVALID
    assert str(catalog) == "tiers[1].features.sso: unknown feature\nbroken"

    append_only = AppendOnlyError("no")
    assert isinstance(append_only, ApplicationError)
    assert append_only.details["reason"] == MeteringErrorCode.APPEND_ONLY


def test_a_reason_given_at_raise_time_wins_and_details_are_not_shared():
    first = BadRequest("x", reason=CompaniesErrorCode.INVALID_DOMAIN)
    second = BadRequest("y")
    # Every 400 names what was wrong: input not about one field under nonFieldErrors.
    assert first.details == {"reason": "invalid_domain", "fields": {"nonFieldErrors": ["x"]}}
    assert second.details == {"fields": {"nonFieldErrors": ["y"]}} and second.reason is None
