"""The admin's sidebar (django-unfold, SPEC §9), grouped by area rather than
by Django app, built per request from the models registered with the admin
site: a model an app adds later appears in its area without a change here,
and a model the user may not view is not listed.

Areas are chosen for the support and billing desks: a model not named
below lands in its app's default area (`_APP_AREA`), and an app not named
there lands under "More"."""

from __future__ import annotations

from django.contrib import admin
from django.urls import NoReverseMatch, reverse

# (area title, icon) in display order.
_AREAS = [
    ("Customers", "apartment"),
    ("Access", "key"),
    ("Usage", "monitoring"),
    ("Credits", "toll"),
    ("Billing", "payments"),
    ("Integrations", "hub"),
    ("Staff", "shield_person"),
    ("More", "more_horiz"),
]
_APP_AREA = {
    "companies": "Customers",
    "desk": "Customers",
    "insights": "Customers",
    "entitlements": "Access",
    "metering": "Usage",
    "credits": "Credits",
    "billing": "Billing",
    "notifications": "Integrations",
    "auth": "Staff",
    "axes": "Staff",
}
# Models whose area differs from their app's.
_MODEL_AREA = {
    "companies.product": "Integrations",
    "companies.apikey": "Integrations",
    "companies.servicecredential": "Integrations",
    "billing.stripewebhookevent": "Integrations",
}
# Models that lead their area (the rest follow alphabetically).
_FIRST = ("companies.company", "companies.contact", "entitlements.featureaccess", "credits.wallet")


def sidebar_navigation(request) -> list[dict]:
    groups: dict[str, list[tuple[str, dict]]] = {title: [] for title, _ in _AREAS}
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        label = f"{opts.app_label}.{opts.model_name}"
        perms = model_admin.get_model_perms(request)
        if not any(perms.values()) or not perms.get("view", perms.get("change")):
            continue
        try:
            link = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        except NoReverseMatch:
            continue
        area = _MODEL_AREA.get(label) or _APP_AREA.get(opts.app_label, "More")
        sort_key = (0, _FIRST.index(label)) if label in _FIRST else (1, str(opts.verbose_name_plural))
        groups[area].append(
            (sort_key, {"title": str(opts.verbose_name_plural).capitalize(), "link": link})
        )
    navigation = [
        {
            "title": "Dashboard",
            "separator": False,
            "items": [{"title": "Dashboard", "icon": "dashboard", "link": reverse("admin:index")}],
        }
    ]
    for title, icon in _AREAS:
        items = [item for _, item in sorted(groups[title], key=lambda pair: pair[0])]
        if not items:
            continue
        for item in items:
            item["icon"] = icon
        navigation.append({"title": title, "separator": True, "collapsible": False, "items": items})
    return navigation
