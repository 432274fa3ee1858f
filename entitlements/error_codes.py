"""Machine-readable reasons of the entitlements app's errors (`details.reason`)."""

from enum import StrEnum


class EntitlementsErrorCode(StrEnum):
    CATALOG_INVALID = "catalog_invalid"
