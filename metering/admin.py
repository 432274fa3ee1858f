"""Usage in the back office (SPEC §9): read-only meters, events and snapshots,
the company page's usage panels (current usage against limits, a chart of
daily usage, usage by dimension and peak hours), and the *Adjust usage…* action, which calls the same services
as the API. The audit trail — who, when, old → new, why — is the events
themselves (previousValue/newValue/performedBy/adjustmentReason)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin

from companies import admin_extensions
from companies.admin_extensions import ReadOnlyAdminMixin
from companies.models import Company, ProductLink
from companies.selectors import company_ids_not_visible
from config.errors import ApplicationError
from companies.actors import Actor
from entitlements.models import Feature, FeatureKind

from . import selectors, services
from .charts import labelled_bars_svg
from .models import UsageEvent, UsageEventPartitionDrop, UsageMeter, UsageSnapshot, UsageSource
from .rules import check_quantity

ADJUST_PERMISSION = "metering.adjust_usage"
RETRY_DELIVERY_PERMISSION = "metering.retry_usage_delivery"


def _company_link(obj) -> str:
    url = reverse("admin:companies_company_change", args=[obj.company_id])
    return format_html('<a href="{}">{}</a>', url, obj.company)


# --- Meters -------------------------------------------------------------------------------


@admin.register(UsageMeter)
class UsageMeterAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = [
        "company_display", "feature", "period_start", "period_end", "value", "closed_at", "updated_at", "events_link",
    ]
    list_filter = ["feature__product", "feature", ("closed_at", admin.EmptyFieldListFilter)]
    list_select_related = ["company", "feature", "feature__product"]
    search_fields = ["company__name", "company__short_id", "feature__code"]
    date_hierarchy = "period_start"
    show_full_result_count = False
    readonly_fields = [field.name for field in UsageMeter._meta.fields] + ["events_link"]

    @admin.display(description="company", ordering="company__name")
    def company_display(self, meter: UsageMeter) -> str:
        return _company_link(meter)

    @admin.display(description="history")
    def events_link(self, meter: UsageMeter) -> str:
        """Who changed this meter, when, old → new and why: its events."""
        url = reverse("admin:metering_usageevent_changelist") + f"?meter__id__exact={meter.pk}"
        return format_html('<a href="{}">events</a>', url)

    def get_urls(self):
        from django.urls import path

        return [
            path(
                "explain/<uuid:company_id>/<uuid:product_id>/<str:feature_code>/",
                self.admin_site.admin_view(self.explain_view),
                name="metering_feature_explain",
            ),
            *super().get_urls(),
        ]

    def explain_view(self, request, company_id, product_id, feature_code):
        """The Explain of SPEC §4 for staff (the feature row's "why?"): the
        very answer of `GET …/features/{code}/explain` (`feature_explain` +
        `explain_data`), laid out for people. The template only shows it."""
        from django.core.exceptions import PermissionDenied
        from django.http import Http404

        from entitlements.models import Feature as FeatureModel

        from .api.checks import explain_data

        if not request.user.has_perm("entitlements.view_featureaccess"):
            raise PermissionDenied("You may not see feature access.")
        company = Company.objects.filter(pk=company_id).first()
        feature = FeatureModel.objects.filter(product_id=product_id, code=feature_code).select_related("product").first()
        if company is None or feature is None:
            raise Http404("No such company or feature.")
        explanation = explain_data(
            selectors.feature_explain(product_id=product_id, company_id=company.pk, feature_code=feature_code)
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Why: {feature.name} for {company.name}",
            "company": company,
            "feature": feature,
            "explain": explanation,
            "company_url": reverse("admin:companies_company_change", args=[company.pk]),
            "api_path": f"/api/v1/companies/{company.pk}/features/{feature_code}/explain",
        }
        return TemplateResponse(request, "admin/metering/feature_explain.html", context)


# --- Events -------------------------------------------------------------------------------


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = [
        "event_time",
        "company_display",
        "feature",
        "event_type",
        "quantity",
        "change_display",
        "source",
        "who_display",
        "adjustment_reason",
        "stripe_delivery_status",
    ]
    list_filter = ["event_type", "feature", "source", "stripe_delivery_status"]
    list_select_related = ["company", "feature"]
    # "=" makes it an exact match, which the (idempotency_key, product) index serves.
    search_fields = ["=idempotency_key", "=id"]
    date_hierarchy = "event_time"
    show_full_result_count = False
    ordering = ["-event_time", "-created_at"]
    readonly_fields = [field.name for field in UsageEvent._meta.fields]
    fieldsets = [
        (None, {"fields": ["id", "company", "feature", "meter", "event_type", "quantity", "event_time", "created_at"]}),
        (
            "Audit: who, when, old → new, why",
            {
                "fields": [
                    "previous_value",
                    "new_value",
                    "source",
                    "performed_by",
                    "actor_kind",
                    "actor_id",
                    "actor_label",
                    "adjustment_reason",
                    "adjusts_event",
                ]
            },
        ),
        (
            "At write time",
            {
                "fields": [
                    "quantity_limit",
                    "included_quantity",
                    "billable_delta",
                    "idempotency_key",
                    "request_fingerprint",
                    "metadata",
                    "product",
                ]
            },
        ),
        (
            "Stripe delivery",
            {
                "fields": [
                    "stripe_delivery_status",
                    "stripe_event_identifier",
                    "stripe_delivery_attempts",
                    "stripe_next_attempt_at",
                    "stripe_delivery_error",
                    "delivered_at",
                ]
            },
        ),
    ]

    actions = ["retry_stripe_delivery"]

    def has_retry_usage_delivery_permission(self, request) -> bool:
        return request.user.has_perm(RETRY_DELIVERY_PERMISSION)

    @admin.action(description="Retry Stripe delivery of selected events", permissions=["retry_usage_delivery"])
    def retry_stripe_delivery(self, request, queryset):
        requeued = services.usage_delivery_retry(event_ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request, f"{requeued} event(s) queued for delivery to Stripe; the next delivery run sends them.", messages.SUCCESS
        )

    def lookup_allowed(self, lookup, value, request=None):
        # The company page links to its events with ?company__id__exact=…
        if lookup in ("company__id__exact", "meter__id__exact"):
            return True
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="company", ordering="company__name")
    def company_display(self, event: UsageEvent) -> str:
        return _company_link(event)

    @admin.display(description="old → new")
    def change_display(self, event: UsageEvent) -> str:
        return f"{event.previous_value} → {event.new_value}"

    @admin.display(description="performed by")
    def who_display(self, event: UsageEvent) -> str:
        actor = f"{event.actor_kind}:{event.actor_label}" if event.actor_kind else ""
        if event.performed_by and event.performed_by != event.actor_label:
            return f"{event.performed_by} ({actor})" if actor else event.performed_by
        return actor


# --- Snapshots ----------------------------------------------------------------------------


@admin.register(UsageSnapshot)
class UsageSnapshotAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = [
        "created_at",
        "company_display",
        "feature",
        "snapshot_type",
        "absolute_value",
        "billable_value",
        "reason",
        "created_by",
    ]
    list_filter = ["snapshot_type", "feature"]
    list_select_related = ["company", "feature"]
    search_fields = ["company__name", "company__short_id", "reason"]
    show_full_result_count = False
    readonly_fields = [field.name for field in UsageSnapshot._meta.fields]

    @admin.display(description="company", ordering="company__name")
    def company_display(self, snapshot: UsageSnapshot) -> str:
        return _company_link(snapshot)


# --- Company page: usage panel ------------------------------------------------------------


_CHART_LABELS = {"day": "%d %b", "week": "wk of %d %b", "month": "%b %Y"}


def _usage_chart_data(points, *, label: str, granularity: str) -> str:
    """The JSON unfold's chart components (Chart.js, bundled with unfold)
    read from `data-value`."""
    return json.dumps(
        {
            "labels": [start.strftime(_CHART_LABELS[granularity]) for start, _ in points],
            "datasets": [
                {"label": label, "data": [value for _, value in points], "backgroundColor": "var(--color-primary-600)"}
            ],
        }
    )


def company_usage_panel(request, company: Company) -> str:
    """Each metered feature's current usage against its limit, and charts of
    its usage by day, week and month from the daily rollups."""
    if not request.user.has_perm("metering.view_usagemeter"):
        return ""
    usage = selectors.company_metered_usage(company_id=company.pk)
    series = selectors.usage_rollup_series(company_id=company.pk)
    charts = [
        {
            "feature": feature,
            "by": [
                {
                    "granularity": granularity,
                    "total": sum(value for _, value in points),
                    "data": _usage_chart_data(points, label=f"{feature.name} ({feature.unit or 'units'})", granularity=granularity),
                }
                for granularity, points in by_granularity.items()
            ],
        }
        for feature, by_granularity in series.items()
    ]
    return render_to_string(
        "admin/metering/company_usage_panel.html",
        {
            "usage": usage,
            "charts": charts,
            "granularities": [("day", "By day (30 days)"), ("week", "By week (12 weeks)"), ("month", "By month (12 months)")],
            "events_url": reverse("admin:metering_usageevent_changelist") + f"?company__id__exact={company.pk}",
            "adjust_url": reverse("admin:companies_company_action", args=[company.pk, "metering_adjust_usage"])
            if request.user.has_perm(ADJUST_PERMISSION)
            else None,
        },
        request=request,
    )


def company_dimensions_panel(request, company: Company) -> str:
    """Per metered feature: usage by each of its dimensions over the last 30
    days (top 10 values, then `other`) and its peak hours (usage per UTC hour
    of the day over the last 35 days), from the rollups (docs/metering.md)."""
    if not request.user.has_perm("metering.view_usagemeter"):
        return ""
    product_ids = ProductLink.objects.filter(company_id=company.pk).values("product_id")
    features = Feature.objects.filter(kind=FeatureKind.METERED, product_id__in=product_ids)
    blocks = []
    for feature in features.select_related("product").order_by("product__code", "code"):
        hours = selectors.peak_hours(company_id=company.pk, feature_id=feature.pk)
        breakdowns = []
        for dimension in feature.dimensions or []:
            shares = selectors.dimension_breakdown(company_id=company.pk, feature_id=feature.pk, dimension=dimension)
            total = sum(share.quantity for share in shares) or 1
            breakdowns.append(
                {
                    "dimension": dimension,
                    "shares": [
                        {
                            "label": share.value if share.value else "(not set)",
                            "quantity": share.quantity,
                            "events": share.events,
                            "percent": max(0, min(100, round(100 * share.quantity / total))),
                        }
                        for share in shares
                    ],
                }
            )
        if not any(hours) and not any(b["shares"] for b in breakdowns):
            continue
        peak = max(range(24), key=lambda hour: hours[hour]) if any(hours) else None
        blocks.append(
            {
                "feature": feature,
                "breakdowns": breakdowns,
                "peak_hour": peak,
                "hours_svg": labelled_bars_svg(
                    [(f"{hour:02d}h", hours[hour]) for hour in range(24)],
                    title=f"{feature.name}: usage per UTC hour of the day, last 35 days",
                    unit=feature.unit or "",
                    label_every=3,
                ),
            }
        )
    return render_to_string(
        "admin/metering/company_dimensions_panel.html", {"blocks": blocks}, request=request
    )


# --- Adjust usage… action ---------------------------------------------------------------


@admin.register(UsageEventPartitionDrop)
class UsageEventPartitionDropAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """Months of raw usage events dropped by retention (docs/scaling.md)."""

    list_display = ("partition", "range_start", "range_end", "events", "dropped_at")
    ordering = ("-range_start",)


class FeatureChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, feature: Feature) -> str:
        return f"{feature.product.code} · {feature.name} ({feature.code})"


class AdjustUsageForm(forms.Form):
    MODE_DELTA = "delta"
    MODE_SET = "set"

    feature = FeatureChoiceField(queryset=Feature.objects.none())
    mode = forms.ChoiceField(
        choices=[(MODE_DELTA, "Adjust by a delta (+/−)"), (MODE_SET, "Set to an absolute value")],
        widget=forms.RadioSelect,
        initial=MODE_DELTA,
    )
    value = forms.IntegerField(
        min_value=-(2**63 - 1),
        max_value=2**63 - 1,
        help_text="The delta (not 0; negative lowers usage) or the new absolute value (≥ 0).",
    )
    reason = forms.CharField(max_length=2000, widget=forms.TextInput(attrs={"size": 60}))

    def __init__(self, *args, companies, **kwargs):
        super().__init__(*args, **kwargs)
        self.companies = list(companies)
        product_ids = ProductLink.objects.filter(company__in=self.companies).values("product_id")
        self.fields["feature"].queryset = (
            Feature.objects.filter(product_id__in=product_ids, kind=FeatureKind.METERED)
            .select_related("product")
            .order_by("product__code", "code")
        )

    def clean(self):
        cleaned = super().clean()
        mode, value, feature = cleaned.get("mode"), cleaned.get("value"), cleaned.get("feature")
        if value is not None:
            # The services' own checks of a delta and of an absolute value.
            try:
                if mode == self.MODE_SET:
                    check_quantity(value, field="value", minimum=0, allow_zero=True)
                else:
                    check_quantity(value, field="value", minimum=None)
            except ApplicationError as error:
                for message in error.details["fields"]["value"]:
                    self.add_error("value", message)
        if feature is not None:
            not_visible = company_ids_not_visible(
                product_id=feature.product_id, company_ids=[c.pk for c in self.companies]
            )
            unlinked = [c.name for c in self.companies if c.pk in not_visible]
            if unlinked:
                self.add_error("feature", f"Not linked to {feature.product.name}: {', '.join(unlinked)}.")
        return cleaned


def _companies_usage(companies: list[Company]) -> list[tuple]:
    usage = selectors.companies_metered_usage(company_ids=[company.pk for company in companies])
    return [(company, usage[company.pk]) for company in companies]


def usage_adjust_for_admin(*, company: Company, feature: Feature, mode: str, value: int, reason: str, user):
    """The admin action's one write: the API's services, with the staff user
    as actor and source `admin`."""
    common = {
        "product_id": feature.product_id,
        "company_id": company.pk,
        "feature_code": feature.code,
        "reason": reason,
        "performed_by": user.get_username(),
        "actor": Actor.for_user(user),
        "source": UsageSource.ADMIN,
    }
    if mode == AdjustUsageForm.MODE_SET:
        return services.usage_set(absolute_value=value, **common)
    return services.usage_adjust(delta=value, **common)


@admin.action(description="Adjust usage…")
def metering_adjust_usage(modeladmin, request, queryset):
    """Intermediate page (like delete_selected): feature, set-to or delta and
    a required reason, then usage_set / usage_adjust for each selected company."""
    if not request.user.has_perm(ADJUST_PERMISSION):
        modeladmin.message_user(request, "You may not adjust usage.", messages.ERROR)
        return None
    companies = list(queryset.order_by("name"))
    form = AdjustUsageForm(request.POST if "apply" in request.POST else None, companies=companies)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        done, failed = [], []
        for company in companies:
            try:
                result = usage_adjust_for_admin(
                    company=company,
                    feature=data["feature"],
                    mode=data["mode"],
                    value=data["value"],
                    reason=data["reason"],
                    user=request.user,
                )
            except ApplicationError as error:
                failed.append((company, error))
            else:
                done.append((company, result))
        for company, result in done:
            modeladmin.message_user(
                request,
                f"{company.name}: {data['feature'].code} usage {result.previous_usage} → {result.current_usage}.",
                messages.SUCCESS,
            )
        for company, error in failed:
            modeladmin.message_user(request, f"{company.name}: {error.message}", messages.ERROR)
        if not failed:
            return None
        if not done:
            form.add_error(None, "; ".join(f"{c.name}: {e.message}" for c, e in failed))
        else:
            return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Adjust usage",
        "opts": modeladmin.model._meta,
        "companies": companies,
        "form": form,
        "company_usage": _companies_usage(companies[:20]),
        "action_name": "metering_adjust_usage",
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/metering/adjust_usage.html", context)


admin_extensions.register_company_action(metering_adjust_usage, permission=ADJUST_PERMISSION)
admin_extensions.register_company_panel(company_usage_panel)
admin_extensions.register_company_panel(company_dimensions_panel)


def company_feature_rows_panel(request, company: Company) -> str:
    """The first screen of the customer overview (SPEC §9): one row per
    feature of each product — access layer and until when, usage against the
    limit as a bar, reset date, can-use and the one-sentence reason — from
    the same decision function as the check API (`selectors.feature_checks`)."""
    if not request.user.has_perm("entitlements.view_featureaccess"):
        return ""
    products = sorted({link.product for link in company.links.select_related("product")}, key=lambda p: p.code)
    groups = [
        {"product": product, "checks": selectors.feature_checks(product_id=product.pk, company_id=company.pk)}
        for product in products
    ]
    return render_to_string("admin/metering/company_feature_rows.html", {"groups": groups, "company": company}, request=request)


# The per-feature rows need the decision function of issue 14 item 2; shown
# once metering.selectors offers it.
if hasattr(selectors, "feature_checks"):
    admin_extensions.register_company_panel(company_feature_rows_panel, top=True)
