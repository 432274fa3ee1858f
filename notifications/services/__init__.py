"""Writes of the notifications app. `event_emit` is the API every other app
uses; the rest serve the endpoints API, the admin and the delivery worker."""

from .delivery import DeliveryRunResult, deliveries_run, delivery_resend
from .endpoints import endpoint_create, endpoint_delete, endpoint_update
from .events import event_emit, events_prune

__all__ = [
    "DeliveryRunResult",
    "deliveries_run",
    "delivery_resend",
    "endpoint_create",
    "endpoint_delete",
    "endpoint_update",
    "event_emit",
    "events_prune",
]
