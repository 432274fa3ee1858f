"""Insights in the admin: the lifecycle status history and health scores
(read-only), plus the company list's health column and risk filter, the
customer overview's health fact and Health tab, and *Recompute health*
(docs/admin.md: `companies.admin_extensions`); segments (Billing admin
defines them, Support looks; criteria errors are shown next to the field, by
path, from the same validation `load_segments` uses), their memberships
(read-only), and the company list's segment filter and the overview's
segments fact."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Prefetch
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin

from companies import admin_extensions
from companies.admin import format_money
from companies.models import Account, Company

from .criteria import SegmentError
from .models import AccountHealth, AccountStatusChange, HealthSnapshot, RiskLevel, Segment, SegmentMembership
from .services import health_compute, segment_sync, segment_validate

VIEW_HEALTH = "insights.view_accounthealth"
SYNC_PERMISSION = "insights.sync_segment"
RISK_COLOURS = {"low": "#15803d", "medium": "#a16207", "high": "#c2410c", "critical": "#b91c1c"}


@admin.register(AccountStatusChange)
class AccountStatusChangeAdmin(admin_extensions.ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["created_at", "company", "product", "from_status", "to_status", "cause", "actor_label"]
    list_filter = ["product", "to_status", "cause"]
    search_fields = ["company__name", "company__short_id", "=company__id"]
    list_select_related = ["company", "product"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.action(description="Recompute health", permissions=["view"])
def recompute_health(modeladmin, request, queryset):
    """Score the selected accounts now (the nightly job's service)."""
    account_ids = list(queryset.values_list("account_id", flat=True))
    scored = health_compute(account_ids=account_ids)
    modeladmin.message_user(request, f"Health recomputed for {scored} account(s).", messages.SUCCESS)


@admin.register(AccountHealth)
class AccountHealthAdmin(admin_extensions.ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["account", "score", "risk_level", "computed_at"]
    list_filter = ["risk_level", "account__product", "account__status"]
    search_fields = ["account__company__name", "account__company__short_id", "=account__company__id"]
    list_select_related = ["account__company", "account__product"]
    readonly_fields = ["account", "score", "risk_level", "components_display", "computed_at"]
    fields = readonly_fields
    actions = [recompute_health]
    ordering = ["score"]
    show_full_result_count = False

    @admin.display(description="Components")
    def components_display(self, health: AccountHealth) -> str:
        return render_to_string("admin/insights/health_components.html", {"health": health})


@admin.register(HealthSnapshot)
class HealthSnapshotAdmin(admin_extensions.ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["date", "account", "score", "risk_level"]
    list_filter = ["risk_level", "account__product"]
    search_fields = ["account__company__name", "account__company__short_id"]
    list_select_related = ["account__company", "account__product"]
    date_hierarchy = "date"
    show_full_result_count = False


# --- The company list and the customer overview -------------------------------------------


def risk_badge(health: AccountHealth | None) -> str:
    if health is None:
        return "—"
    return format_html(
        '<span style="color:{};font-weight:600" title="{}">{} · {}</span>',
        RISK_COLOURS.get(health.risk_level, "inherit"), health.get_risk_level_display(),
        health.score, health.get_risk_level_display(),
    )


def _accounts_with_health(company: Company) -> list[Account]:
    accounts = getattr(company, "_health_accounts", None)
    if accounts is None:
        accounts = list(company.accounts.select_related("product", "health"))
    return accounts


def _health_of(account: Account) -> AccountHealth | None:
    try:
        return account.health
    except AccountHealth.DoesNotExist:
        return None


@admin.display(description="Health")
def company_health_column(company: Company) -> str:
    """Score and risk per product account (one word when the company has one)."""
    accounts = _accounts_with_health(company)
    parts = [(account.product.code, _health_of(account)) for account in accounts]
    parts = [(code, health) for code, health in parts if health is not None]
    if not parts:
        return "—"
    if len(parts) == 1:
        return risk_badge(parts[0][1])
    return format_html(", ".join(["{} {}"] * len(parts)), *[x for code, health in parts for x in (code, risk_badge(health))])


# The changelist prefetches this for every row (no query per company).
company_health_column.prefetch = Prefetch(
    "accounts", queryset=Account.objects.select_related("product", "health"), to_attr="_health_accounts"
)


class CompanyRiskFilter(admin.SimpleListFilter):
    """Companies by the health risk of an account (SPEC §9 "filter by risk")."""

    title = "risk"
    parameter_name = "risk"

    def lookups(self, request, model_admin):
        return [*RiskLevel.choices, ("none", "Not computed")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value == "none":
            return queryset.filter(accounts__health__isnull=True).distinct()
        return queryset.filter(accounts__health__risk_level=value).distinct()


def company_health_summary(request, company: Company) -> list[dict]:
    """Header fact of the customer overview: health and risk per product."""
    parts = []
    for account in company.accounts.select_related("product", "health"):
        health = _health_of(account)
        if health is not None:
            parts.append(f"{account.product.code}: {health.score} · {health.get_risk_level_display()} risk")
    return [{"label": "Health", "value": ", ".join(parts) or "not computed"}]


def company_health_panel(request, company: Company) -> str:
    """The Health tab: each account's components explained, and its score history."""
    if not request.user.has_perm(VIEW_HEALTH):
        return ""
    accounts = [a for a in company.accounts.select_related("product", "health") if _health_of(a) is not None]
    if not accounts:
        return ""
    history = {}
    for snapshot in HealthSnapshot.objects.filter(account__in=accounts).order_by("-date")[: 30 * len(accounts)]:
        history.setdefault(snapshot.account_id, []).append(snapshot)
    rows = [{"account": a, "health": a.health, "history": list(reversed(history.get(a.pk, [])))} for a in accounts]
    return render_to_string("admin/insights/company_health_panel.html", {"rows": rows})


@admin.action(description="Recompute health")
def company_recompute_health(modeladmin, request, queryset):
    """Score the selected companies' accounts now; back to the page."""
    account_ids = list(Account.objects.filter(company__in=queryset).values_list("pk", flat=True))
    scored = health_compute(account_ids=account_ids)
    modeladmin.message_user(request, f"Health recomputed for {scored} account(s).", messages.SUCCESS)


admin_extensions.register_company_list_column(company_health_column)
admin_extensions.register_company_list_filter(CompanyRiskFilter)
admin_extensions.register_company_summary(company_health_summary)
admin_extensions.register_company_panel(company_health_panel)
admin_extensions.register_company_action(company_recompute_health, permission=VIEW_HEALTH)


# --- Segments -------------------------------------------------------------------------


class SegmentAdminForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["product", "slug", "name", "type", "description", "criteria", "parent"]
        widgets = {"criteria": forms.Textarea(attrs={"rows": 14, "style": "font-family: monospace"})}

    def clean(self):
        cleaned = super().clean()
        product = cleaned.get("product")
        if product is None or self.has_error("criteria"):
            return cleaned  # the field's own error (required, not JSON) is already shown
        try:
            fields = segment_validate(
                product_id=product.pk,
                slug=cleaned.get("slug"),
                name=cleaned.get("name"),
                type=cleaned.get("type"),
                criteria=cleaned.get("criteria"),
                parent=cleaned.get("parent"),
                segment_id=None if self.instance._state.adding else self.instance.pk,
            )
        except SegmentError as error:
            # Each message next to its field: `criteria.all[2].op: …` under Criteria.
            for path, path_messages in error.details["fields"].items():
                field = path.split(".")[0].split("[")[0]
                for message in path_messages:
                    text = message if path == field else f"{path}: {message}"
                    self.add_error(field if field in self.fields else None, text)
            return cleaned
        cleaned.update(fields)
        return cleaned


@admin.register(Segment)
class SegmentAdmin(ModelAdmin):
    form = SegmentAdminForm
    list_display = ["name", "product", "slug", "type", "parent", "members", "total_mrr", "last_synced_at"]
    list_filter = ["product", "type"]
    search_fields = ["name", "slug"]
    list_select_related = ["product", "parent"]
    autocomplete_fields = ["parent"]
    readonly_fields = ["last_synced_at", "numbers"]
    actions = ["sync_now"]
    fieldsets = [
        (None, {"fields": ["product", "slug", "name", "type", "description", "parent"]}),
        ("Criteria", {"fields": ["criteria"], "description": (
            '{"all": [...]} or {"any": [...]} of conditions {"field", "op", "value"} and nested groups. '
            "Fields: tier, status, mrr, healthScore, riskLevel, createdAt, country, industry, size, timezone, "
            "locale, currency, lifetimeValue, lastActivityAt, metadata.<key>, usage.<featureCode>, credits.balance. "
            "Operators: eq, ne, gt, gte, lt, lte, in, contains, exists. See docs/insights.md."
        )}),
        ("Last sync", {"fields": ["last_synced_at", "numbers"]}),
    ]

    @admin.display(description="Members")
    def members(self, segment: Segment):
        count = segment.stats.get("customer_count")
        if count is None:
            return "not synced"
        url = reverse("admin:companies_company_changelist") + f"?segment={segment.pk}"
        return format_html('<a href="{}">{}</a>', url, count)

    @admin.display(description="Total MRR")
    def total_mrr(self, segment: Segment):
        if "total_mrr" not in segment.stats:
            return "—"
        return format_money(segment.stats["total_mrr"], segment.stats.get("currency", ""))

    @admin.display(description="Numbers at the last sync")
    def numbers(self, segment: Segment):
        stats = segment.stats
        if not stats:
            return "Not synced yet (the sync_segments job runs every 10 minutes; or use the Sync now action)."
        currency = stats.get("currency", "")
        return (
            f"{stats['customer_count']} customers ({stats['percent_of_total']}% of the product's), "
            f"MRR {format_money(stats['total_mrr'], currency)} in all, {format_money(stats['avg_mrr'], currency)} "
            f"on average; {stats['churn_rate']}% churned"
        )

    @admin.action(description="Sync selected segments now", permissions=["sync"])
    def sync_now(self, request, queryset):
        # Parents first, so that a child sees its parent's current criteria
        # (a child's rule includes its ancestors' anyway).
        results = [segment_sync(segment_id=pk) for pk in queryset.order_by("parent_id", "slug").values_list("pk", flat=True)]
        summary = ", ".join(f"{r.slug}: {r.members} (+{r.entered} −{r.left})" for r in results)
        self.message_user(request, f"Synced {len(results)} segment(s): {summary}", messages.SUCCESS)

    def has_sync_permission(self, request):
        return request.user.has_perm(SYNC_PERMISSION)


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(admin_extensions.ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["segment", "company", "entered_at"]
    list_filter = ["segment"]
    search_fields = ["company__name", "company__short_id", "segment__slug"]
    list_select_related = ["segment", "company"]
    show_full_result_count = False


class CompanySegmentFilter(admin.SimpleListFilter):
    """The Company list by segment (SPEC §9): members at the segment's last sync."""

    title = "segment"
    parameter_name = "segment"

    def lookups(self, request, model_admin):
        segments = Segment.objects.select_related("product").order_by("product__code", "name")
        return [(str(segment.pk), f"{segment.product.code} · {segment.name}") for segment in segments]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            segment_id = uuid.UUID(value)
        except ValueError:
            return queryset.none()
        return queryset.filter(Exists(SegmentMembership.objects.filter(segment_id=segment_id, company_id=OuterRef("pk"))))


def company_segments_summary(request, company: Company) -> list[dict]:
    names = list(
        SegmentMembership.objects.filter(company=company)
        .order_by("segment__product__code", "segment__name")
        .values_list("segment__product__code", "segment__name")
    )
    return [{"label": "Segments", "value": ", ".join(f"{code} · {name}" for code, name in names) or "none"}]


admin_extensions.register_company_list_filter(CompanySegmentFilter)
admin_extensions.register_company_summary(company_segments_summary)
