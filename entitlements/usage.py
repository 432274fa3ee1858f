"""The seam through which entitlements reads current usage without importing
metering (dependencies point companies ← entitlements ← metering ← billing).

Metering registers one reader in its AppConfig.ready():

    from entitlements.usage import register_usage_reader
    register_usage_reader(read_current_usage)

    def read_current_usage(*, company_id, features, at) -> dict[feature_id, int]: ...

The reader gets only metered features and returns the usage of the period
that contains `at`; a feature missing from the answer counts as 0. Until a
reader is registered every usage reads as 0.

Usage is read live on every check (it is not part of the check cache), so
the reader should be one indexed query."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Feature

UsageReader = Callable[..., Mapping[Any, int]]

_reader: UsageReader | None = None


def register_usage_reader(fn: UsageReader) -> None:
    """Install the usage reader (the last registration wins, so a test can
    swap in its own and restore the previous one with `unregister`)."""
    global _reader
    _reader = fn


def unregister_usage_reader(fn: UsageReader | None = None) -> None:
    global _reader
    if fn is None or _reader is fn:
        _reader = None


def get_usage_reader() -> UsageReader | None:
    return _reader


def current_usage(*, company_id, features: Sequence[Feature], at: datetime) -> dict[Any, int]:
    """Current-period usage per feature id of the metered `features` (0 when
    nothing is recorded or no reader is registered)."""
    metered = [feature for feature in features if feature.has_quantity]
    usage = {feature.id: 0 for feature in metered}
    if not metered or _reader is None:
        return usage
    answer = _reader(company_id=company_id, features=metered, at=at) or {}
    for feature_id, value in answer.items():
        if feature_id in usage:
            usage[feature_id] = max(0, int(value))
    return usage
