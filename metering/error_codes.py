"""Machine-readable reasons of the metering app's errors (`details.reason`)."""

from enum import StrEnum


class MeteringErrorCode(StrEnum):
    APPEND_ONLY = "append_only"
