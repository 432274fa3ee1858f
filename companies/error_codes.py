"""Machine-readable reasons of the companies app's errors (`details.reason`)."""

from enum import StrEnum


class CompaniesErrorCode(StrEnum):
    INVALID_DOMAIN = "invalid_domain"
