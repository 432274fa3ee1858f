"""Notifications in the admin (SPEC §9, §11): Billing admin manages the
products' webhook endpoints (the secret is shown once, on creation); events
and deliveries are read-only lists with filters and a *Resend* action.
Saving and resending go through the same services as the API."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline

from companies.admin_extensions import ReadOnlyAdminMixin
from companies.admin_secrets import SecretShownOnceMixin
from config.errors import BadRequest

from .models import Delivery, DeliveryAttempt, Event, EventType, WebhookEndpoint
from .selectors import endpoint_flagged_q
from .services import delivery_resend, endpoint_create, endpoint_update
from .services.delivery import event_payload
from .targets import endpoint_url_validate


class WebhookEndpointForm(forms.ModelForm):
    # The service's rule (scheme, SSRF guard) decides, not Django's URL regex.
    url = forms.CharField(max_length=2000, help_text="http(s) URL; https and public addresses only in production.")
    event_types = forms.MultipleChoiceField(
        choices=EventType.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None selected: every event type.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["product", "url", "description", "event_types", "enabled"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            return endpoint_url_validate(url)
        except BadRequest as error:
            raise forms.ValidationError(error.message) from None


class FailingFilter(admin.SimpleListFilter):
    title = "health"
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [("failing", "Failing or disabled by failures"), ("healthy", "Healthy")]

    def queryset(self, request, queryset):
        flagged = endpoint_flagged_q()
        if self.value() == "failing":
            return queryset.filter(flagged)
        if self.value() == "healthy":
            return queryset.exclude(flagged)
        return queryset


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(SecretShownOnceMixin, ModelAdmin):
    """Billing admin registers endpoints for a product; the signing secret is
    shown once, on the page that follows the save (never in a message, which
    would sit in the session or a cookie)."""

    form = WebhookEndpointForm
    list_display = ["url", "product", "enabled", "health_display", "failing_since", "last_success_at", "created_at"]
    list_filter = [FailingFilter, "enabled", "disabled_reason", "product"]
    list_select_related = ["product"]
    search_fields = ["url", "description", "=id"]
    secret_template = "admin/notifications/webhookendpoint/secret_created.html"
    secret_title = "Webhook endpoint created"
    secret_context_names = ("endpoint", "secret")
    readonly_fields = ["id", "disabled_reason", "disabled_at", "failing_since", "last_success_at", "created_at", "updated_at", "deliveries_link"]

    def get_fields(self, request, obj=None):
        fields = ["product", "url", "description", "event_types", "enabled"]
        return fields if obj is None else [*fields, *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        # The product of an endpoint never changes (its deliveries belong to it).
        return self.readonly_fields if obj is None else [*self.readonly_fields, "product"]

    @admin.display(description="health")
    def health_display(self, endpoint: WebhookEndpoint) -> str:
        if endpoint.disabled_reason in ("failing", "gone"):
            return format_html('<strong style="color:#b91c1c">Disabled: {}</strong>', endpoint.get_disabled_reason_display())
        if endpoint.failing_since:
            since = endpoint.failing_since.strftime("%Y-%m-%d %H:%M UTC")
            return format_html('<span style="color:#b45309">Failing since {}</span>', since)
        return "OK" if endpoint.enabled else "Disabled"

    @admin.display(description="deliveries")
    def deliveries_link(self, endpoint: WebhookEndpoint) -> str:
        return format_html('<a href="../../delivery/?endpoint__id__exact={}">Deliveries to this endpoint</a>', endpoint.pk)

    def create_with_secret(self, request, obj):
        data = request._endpoint_form_data
        created = endpoint_create(
            product=data["product"], url=data["url"], event_types=data["event_types"], description=data["description"]
        )
        if not data["enabled"]:
            created = endpoint_update(endpoint=created, enabled=False)
        return created, created.secret

    def save_change(self, request, obj) -> None:
        data = request._endpoint_form_data
        endpoint_update(
            endpoint=WebhookEndpoint.objects.get(pk=obj.pk),
            url=data["url"],
            event_types=data["event_types"],
            description=data["description"],
            enabled=data["enabled"],
        )

    def save_model(self, request, obj, form, change):
        # The services take the form's values (not the half-updated instance).
        request._endpoint_form_data = form.cleaned_data
        super().save_model(request, obj, form, change)


# --- events and deliveries (read-only) ------------------------------------------------------


class DeliveryInline(ReadOnlyAdminMixin, TabularInline):
    model = Delivery
    extra = 0
    fields = ["endpoint", "status", "attempts", "last_status_code", "next_attempt_at", "delivered_at"]
    readonly_fields = fields
    show_change_link = True


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["created_at", "type", "product", "id"]
    list_filter = ["type", "product"]
    list_select_related = ["product"]
    search_fields = ["=id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = ["id", "type", "product", "created_at", "payload_display"]
    readonly_fields = fields
    inlines = [DeliveryInline]

    @admin.display(description="payload (as delivered)")
    def payload_display(self, event: Event) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event_payload(event), indent=2, sort_keys=True))


class DeliveryAttemptInline(ReadOnlyAdminMixin, TabularInline):
    model = DeliveryAttempt
    extra = 0
    fields = ["attempted_at", "succeeded", "status_code", "duration_ms", "error", "response_excerpt"]
    readonly_fields = fields


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["created_at", "event_type", "endpoint", "status", "attempts", "last_status_code", "last_error", "next_attempt_at"]
    list_filter = ["status", "event__type", "endpoint"]
    list_select_related = ["event", "endpoint"]
    search_fields = ["=event__id", "=id"]
    show_full_result_count = False
    raw_id_fields = ["event", "endpoint"]
    fields = ["id", "event", "endpoint", "status", "attempts", "next_attempt_at", "retry_until", "last_status_code", "last_error", "delivered_at", "created_at"]
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]
    actions = ["resend"]

    @admin.display(description="event type", ordering="event__type")
    def event_type(self, delivery: Delivery) -> str:
        return delivery.event.type

    def lookup_allowed(self, lookup, value, request=None):
        if lookup == "endpoint__id__exact":
            return True
        return super().lookup_allowed(lookup, value, request)

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("notifications.resend_delivery")

    @admin.action(description="Resend selected deliveries", permissions=["resend"])
    def resend(self, request, queryset):
        resent, refused = 0, 0
        for delivery in queryset.select_related("endpoint"):
            try:
                delivery_resend(delivery=delivery)
                resent += 1
            except BadRequest:
                refused += 1
        self.message_user(request, f"{resent} delivery(ies) queued to be sent again.", messages.SUCCESS)
        if refused:
            self.message_user(request, f"{refused} skipped: their endpoint is disabled (enable it first).", messages.WARNING)
