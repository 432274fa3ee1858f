"""Writes of the insights app (keyword-only services). Import from here."""

from .health import health_compute
from .lifecycle import account_status_change, lifecycle_update
from .revenue import revenue_snapshot
from .segments import (
    SegmentLoadResult,
    SegmentSyncResult,
    segment_members_query,
    segment_sync,
    segment_validate,
    segments_load,
    segments_sync,
)

__all__ = [
    "SegmentLoadResult",
    "SegmentSyncResult",
    "account_status_change",
    "health_compute",
    "lifecycle_update",
    "revenue_snapshot",
    "segment_members_query",
    "segment_sync",
    "segment_validate",
    "segments_load",
    "segments_sync",
]
