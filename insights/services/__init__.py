"""Writes of the insights app (keyword-only services). Import from here."""

from .lifecycle import account_status_change, lifecycle_update

__all__ = ["account_status_change", "lifecycle_update"]
