"""Writes of the metering app (HackSoft-style services): keyword-only,
each with its contract in the docstring. Import from here."""

from .billing_periods import billing_periods_set
from .corrections import usage_adjust, usage_set
from .delivery import usage_delivery_retry
from .merge import UsageMerged, usage_merge
from .meters import meter_close, meters_close_due, meters_get_or_create
from .partitions import partitions_analyze, partitions_ensure, partitions_prune
from .rollups import rollups_compact, rollups_merge, rollups_rebuild
from .tracking import MAX_BATCH_SIZE, BatchItemResult, TrackRequest, usage_track, usage_track_batch

__all__ = [
    "billing_periods_set",
    "MAX_BATCH_SIZE",
    "BatchItemResult",
    "TrackRequest",
    "meter_close",
    "meters_close_due",
    "meters_get_or_create",
    "partitions_analyze",
    "partitions_ensure",
    "partitions_prune",
    "rollups_compact",
    "rollups_merge",
    "rollups_rebuild",
    "usage_adjust",
    "usage_delivery_retry",
    "usage_set",
    "usage_track",
    "usage_track_batch",
    "UsageMerged",
    "usage_merge",
]
