"""Writes of the insights app (keyword-only services). Import from here."""

from .lifecycle import account_status_change, lifecycle_update
from .revenue import revenue_snapshot

__all__ = ["account_status_change", "lifecycle_update", "revenue_snapshot"]
