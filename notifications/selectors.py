"""Reads of the notifications app: a product's endpoints and its event feed."""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from config.errors import BadRequest, NotFound

from .models import DisabledReason, Event, EventType, WebhookEndpoint


def endpoint_get(*, product_id, endpoint_id) -> WebhookEndpoint:
    """The product's endpoint, or 404 (another product's endpoint included)."""
    try:
        endpoint_id = uuid.UUID(str(endpoint_id))
    except ValueError:
        raise NotFound("Webhook endpoint not found.") from None
    endpoint = WebhookEndpoint.objects.filter(product_id=product_id, pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("Webhook endpoint not found.")
    return endpoint


def endpoint_list(*, product_id) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(product_id=product_id).order_by("created_at", "id")


def event_list(*, product_id, type: str | None = None, after=None) -> QuerySet[Event]:
    """The product's events oldest first (by creation time, then id), those
    created after event `after` (an id of this product's) when given."""
    events = Event.objects.filter(product_id=product_id).select_related("product")
    if type:
        if type not in EventType.values:
            raise BadRequest.for_field("type", f"Unknown event type. Known: {', '.join(EventType.values)}.")
        events = events.filter(type=type)
    if after is not None:
        anchor = Event.objects.filter(product_id=product_id, pk=after).values_list("created_at", "pk").first()
        if anchor is None:
            raise NotFound("Event not found.", details={"fields": {"after": ["Unknown event id."]}})
        created_at, anchor_id = anchor
        events = events.filter(created_at__gte=created_at).exclude(created_at=created_at, pk__lte=anchor_id)
    return events.order_by("created_at", "pk")


def endpoint_flagged_q() -> Q:
    """The one rule for a flagged endpoint: failing now, or disabled because
    it failed for three days or answered 410."""
    return Q(failing_since__isnull=False) | Q(disabled_reason__in=[DisabledReason.FAILING, DisabledReason.GONE])


def endpoint_failing_list() -> QuerySet[WebhookEndpoint]:
    """Flagged endpoints, for the dashboard and the admin's health filter."""
    return (
        WebhookEndpoint.objects.filter(endpoint_flagged_q())
        .select_related("product")
        .order_by("failing_since", "disabled_at")
    )
