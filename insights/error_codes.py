"""Machine-readable reasons of the insights app's errors (`details.reason`)."""

from enum import StrEnum


class InsightsErrorCode(StrEnum):
    SEGMENT_INVALID = "segment_invalid"
