"""Machine-readable reasons of the companies app's errors (`details.reason`)."""

from enum import StrEnum


class CompaniesErrorCode(StrEnum):
    INVALID_DOMAIN = "invalid_domain"
    # Merges (SPEC §3; desk.services.company_merge).
    COMPANY_MERGED = "company_merged"  # a write to a tombstone: details.keptCompanyId
    MERGE_SUSPENDED = "merge_suspended_account"
