"""The admin dashboard's insights parts (SPEC §9): revenue charts, at-risk
companies, failing Stripe deliveries and webhooks (`insights.dashboard`)."""

from __future__ import annotations

from django import template

from ..dashboard import dashboard_context

register = template.Library()


@register.inclusion_tag("admin/insights/dashboard.html", takes_context=True)
def insights_dashboard(context) -> dict:
    request = context.get("request")
    if request is None or not getattr(request, "user", None):
        return {}
    return dashboard_context(request)
