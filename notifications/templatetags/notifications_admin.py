"""The admin index's flag for failing webhook endpoints (SPEC §9, §11)."""

from __future__ import annotations

from django import template

from ..selectors import endpoint_failing_list

register = template.Library()
MAX_LISTED = 10


@register.inclusion_tag("admin/notifications/failing_endpoints.html", takes_context=True)
def failing_endpoints_panel(context) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("notifications.view_webhookendpoint"):
        return {"endpoints": []}
    return {"endpoints": list(endpoint_failing_list()[: MAX_LISTED + 1]), "max_listed": MAX_LISTED}
