"""Webhook endpoints of a product (SPEC §11). The API and the admin both
save through these functions, so the URL rule and the event-type rule live
here once."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from companies.models import Product
from config.errors import BadRequest

from ..models import DisabledReason, EventType, WebhookEndpoint
from ..signing import endpoint_secret_generate
from ..targets import endpoint_url_validate

MAX_DESCRIPTION_LENGTH = 200
UNSET: Any = object()


def event_types_validate(event_types, *, field: str = "eventTypes") -> list[str]:
    """A list of known event types, without repeats (empty: every type)."""
    if event_types is None:
        return []
    if not isinstance(event_types, list) or not all(isinstance(item, str) for item in event_types):
        raise BadRequest.for_field(field, "Must be a list of event types.")
    unknown = [item for item in event_types if item not in EventType.values]
    if unknown:
        raise BadRequest.for_field(
            field, f"Unknown event type(s): {', '.join(unknown)}. Known: {', '.join(EventType.values)}."
        )
    return list(dict.fromkeys(event_types))


def endpoint_create(
    *, product: Product, url: str, event_types: list[str] | None = None, description: str = ""
) -> WebhookEndpoint:
    """Register an endpoint with a fresh signing secret (readable on the
    returned object; the API and admin show it this once)."""
    endpoint_url_validate(url)
    event_types = event_types_validate(event_types)
    return WebhookEndpoint.objects.create(
        product=product,
        url=url,
        event_types=event_types,
        description=(description or "")[:MAX_DESCRIPTION_LENGTH],
        secret=endpoint_secret_generate(),
    )


def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str = UNSET,
    event_types: list[str] | None = UNSET,
    enabled: bool = UNSET,
    description: str = UNSET,
) -> WebhookEndpoint:
    """Change any of url, eventTypes, enabled, description. Enabling clears the
    disabled reason and the failure run, so a fixed receiver starts afresh."""
    if url is not UNSET:
        endpoint.url = endpoint_url_validate(url)
    if event_types is not UNSET:
        endpoint.event_types = event_types_validate(event_types)
    if description is not UNSET:
        endpoint.description = (description or "")[:MAX_DESCRIPTION_LENGTH]
    if enabled is not UNSET:
        if not isinstance(enabled, bool):
            raise BadRequest.for_field("enabled", "Must be true or false.")
        if enabled and not endpoint.enabled:
            endpoint.disabled_reason = DisabledReason.NONE
            endpoint.disabled_at = None
            endpoint.failing_since = None
        elif not enabled and endpoint.enabled:
            endpoint.disabled_reason = DisabledReason.MANUAL
            endpoint.disabled_at = timezone.now()
        endpoint.enabled = enabled
    with transaction.atomic():
        endpoint.save()
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint with its deliveries (events stay in the feed)."""
    endpoint.delete()
