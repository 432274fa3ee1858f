"""Insights in the admin: the lifecycle status history (read-only), segments
(Billing admin defines them, Support looks; criteria errors are shown next to
the field, by path, from the same validation `load_segments` uses), their
memberships (read-only), and the segment filter and facts of the Company
list and page (through `companies.admin_extensions`)."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin

from companies import admin_extensions
from companies.admin import format_money
from companies.admin_extensions import ReadOnlyAdminMixin
from companies.models import Company

from .criteria import SegmentError
from .models import AccountStatusChange, Segment, SegmentMembership
from .services import segment_sync, segment_validate

SYNC_PERMISSION = "insights.sync_segment"


@admin.register(AccountStatusChange)
class AccountStatusChangeAdmin(ModelAdmin):
    list_display = ["created_at", "company", "product", "from_status", "to_status", "cause", "actor_label"]
    list_filter = ["product", "to_status", "cause"]
    search_fields = ["company__name", "company__short_id", "=company__id"]
    list_select_related = ["company", "product"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
class SegmentMembershipAdmin(ReadOnlyAdminMixin, ModelAdmin):
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
