"""The admin dashboard (the admin index, SPEC §9): one product's revenue
over the last 12 months as charts (MRR and its movements, customers, churn,
ARPU, credit utilisation) from the daily snapshots and the ledger, at-risk
companies, failing Stripe deliveries and webhooks (the failing notification
endpoints are notifications' own panel). Read-only; a fixed number of
queries whatever the data (the revenue figures are cached for 5 minutes,
as long as the `snapshot_revenue` job's period). Each part is shown only to
staff who may view its models."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from django.core.cache import cache
from django.db.models import F, Q
from django.utils import timezone

from billing.selectors import webhook_events_failed
from companies.models import Account, CompanyStatus, Product
from metering.selectors import usage_deliveries_retrying_count

from .models import HIGH_RISK_LEVELS
from .selectors import revenue_periods

MONTHS = 12
AT_RISK_LISTED = 10
REVENUE_CACHE_SECONDS = 300
COLOURS = {
    "mrr": "#4f46e5",
    "new": "#16a34a",
    "expansion": "#65a30d",
    "reactivation": "#0891b2",
    "contraction": "#f59e0b",
    "churned": "#dc2626",
}


def _months_back(today: date, months: int) -> date:
    year, month = today.year, today.month - (months - 1)
    while month <= 0:
        month += 12
        year -= 1
    return date(year, month, 1)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def revenue_months(*, product: Product, now: datetime | None = None) -> list[dict]:
    """The last 12 calendar months (the current one so far) of the product's
    revenue periods; cached for 5 minutes."""
    today = (now or timezone.now()).astimezone(UTC).date()
    start = _months_back(today, MONTHS)
    key = f"insights:dashboard:revenue:{product.pk}:{today.isoformat()}"

    def compute():
        return revenue_periods(
            product_id=product.pk,
            start=datetime(start.year, start.month, 1, tzinfo=UTC),
            end=datetime.combine(_next_month(today), datetime.min.time(), tzinfo=UTC),
            interval="month",
        )

    return cache.get_or_set(key, compute, REVENUE_CACHE_SECONDS)


def _units(minor: int) -> float:
    return round(minor / 100, 2)


def _line(labels, label, values, colour) -> str:
    return json.dumps(
        {"labels": labels, "datasets": [{"label": label, "data": values, "borderColor": colour, "backgroundColor": colour}]}
    )


MOVEMENT_OPTIONS = json.dumps(
    {
        "responsive": True,
        "maintainAspectRatio": False,
        "plugins": {"legend": {"display": True, "align": "end", "labels": {"boxWidth": 8, "boxHeight": 8}}},
        "scales": {"x": {"stacked": True, "grid": {}}, "y": {"stacked": True, "grid": {}}},
    }
)


def revenue_charts(periods: list[dict], *, currency: str) -> list[dict]:
    """Chart.js data (unfold's chart components) of the months."""
    labels = [period["period_start"].strftime("%b %Y") for period in periods]
    unit = currency.upper()
    movements = json.dumps(
        {
            "labels": labels,
            "datasets": [
                {"label": "New", "data": [_units(p["new_mrr"]) for p in periods], "backgroundColor": COLOURS["new"]},
                {"label": "Expansion", "data": [_units(p["expansion_mrr"]) for p in periods], "backgroundColor": COLOURS["expansion"]},
                {"label": "Reactivation", "data": [_units(p["reactivation_mrr"]) for p in periods], "backgroundColor": COLOURS["reactivation"]},
                {"label": "Contraction", "data": [-_units(p["contraction_mrr"]) for p in periods], "backgroundColor": COLOURS["contraction"]},
                {"label": "Churned", "data": [-_units(p["churned_mrr"]) for p in periods], "backgroundColor": COLOURS["churned"]},
            ],
        }
    )
    last = periods[-1] if periods else {}
    return [
        {"id": "chart-mrr", "title": f"MRR ({unit})", "type": "line",
         "current": f"{_units(last.get('mrr', 0)):,.2f} {unit}",
         "data": _line(labels, "MRR", [_units(p["mrr"]) for p in periods], COLOURS["mrr"])},
        {"id": "chart-movements", "title": f"MRR movements ({unit})", "type": "bar", "options": MOVEMENT_OPTIONS,
         "current": "new, expansion, reactivation up; contraction, churn down", "data": movements},
        {"id": "chart-customers", "title": "Paying customers", "type": "line",
         "current": str(last.get("active_customers", 0)),
         "data": _line(labels, "Customers", [p["active_customers"] for p in periods], "#0f766e")},
        {"id": "chart-churn", "title": "Customer churn (%)", "type": "line",
         "current": f"{last.get('customer_churn_rate', 0):.2f}% this month",
         "data": _line(labels, "Customer churn %", [p["customer_churn_rate"] for p in periods], COLOURS["churned"])},
        {"id": "chart-arpu", "title": f"ARPU ({unit})", "type": "line",
         "current": f"{_units(last.get('arpu', 0)):,.2f} {unit}",
         "data": _line(labels, "ARPU", [_units(p["arpu"]) for p in periods], "#7c3aed")},
        {"id": "chart-credits", "title": "Credit utilisation (%)", "type": "line",
         "current": f"{last.get('credits_used', 0)} used of {last.get('credits_purchased', 0)} purchased this month",
         "data": _line(labels, "Credit utilisation %", [p["credit_utilization"] for p in periods], "#ea580c")},
    ]


def at_risk_accounts(*, limit: int = AT_RISK_LISTED) -> list[Account]:
    """Accounts `at_risk` or with high/critical health risk, least healthy
    first (one query)."""
    return list(
        Account.objects.filter(Q(status=CompanyStatus.AT_RISK) | Q(health__risk_level__in=HIGH_RISK_LEVELS))
        .select_related("company", "product", "health")
        .order_by(F("health__score").asc(nulls_last=True), "company__name")[:limit]
    )


def dashboard_context(request) -> dict:
    """Everything the dashboard shows to this user (the parts they may view)."""
    user = request.user
    context: dict = {"charts": [], "products": [], "at_risk": None, "webhooks": None, "deliveries_retrying": None}
    if user.has_perm("insights.view_revenuesnapshot"):
        products = list(Product.objects.order_by("code").only("id", "code", "name", "currency"))
        chosen = next((p for p in products if p.code == request.GET.get("product")), products[0] if products else None)
        context["products"] = products
        context["product"] = chosen
        if chosen is not None:
            context["charts"] = revenue_charts(revenue_months(product=chosen), currency=chosen.currency)
    if user.has_perm("insights.view_accounthealth"):
        context["at_risk"] = at_risk_accounts()
        context["at_risk_limit"] = AT_RISK_LISTED
    if user.has_perm("billing.view_stripewebhookevent"):
        context["webhooks"] = webhook_events_failed(limit=5)
    if user.has_perm("metering.view_usageevent"):
        context["deliveries_retrying"] = usage_deliveries_retrying_count()
    return context
