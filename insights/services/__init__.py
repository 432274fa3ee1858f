"""Writes of the insights app (keyword-only services). Import from here."""

from .health import health_compute
from .lifecycle import account_status_change, lifecycle_update
from .revenue import revenue_snapshot

__all__ = ["health_compute", "account_status_change", "lifecycle_update", "revenue_snapshot"]
