"""Billing in the admin: billing profile and subscriptions on the company page,
read-only lists of webhook events (with *reprocess*) and meter drift, and a
*retry delivery* action on metering's usage events. Every action calls a
service; nothing here re-implements a rule."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline

from companies.admin_extensions import (
    ReadOnlyAdminMixin,
    register_company_action,
    register_company_inline,
    register_company_list_filter,
    register_company_panel,
    register_company_summary,
)

from config.errors import ApplicationError
from companies.actors import Actor

from . import admin_actions
from .models import BillingProfile, CreditPurchase, Invoice, MeterDrift, Price, StripeWebhookEvent, Subscription
from .selectors import price_monthly_amount
from .services.customers import payment_method_detach, payment_method_set_default, payment_methods_list
from .services.prices import price_refresh
from .services.webhooks import webhook_events_reprocess


# --- company page ----------------------------------------------------------------------


class BillingProfileInline(TabularInline):
    """One Stripe customer per account (company × product)."""

    model = BillingProfile
    extra = 0
    can_delete = False
    fields = ("product", "stripe_customer_id", "created_at")
    readonly_fields = ("created_at",)
    show_change_link = True
    verbose_name = "Stripe billing profile"


class SubscriptionInline(ReadOnlyAdminMixin, TabularInline):
    model = Subscription
    fk_name = "company"
    extra = 0
    fields = ("display_name", "product", "tier", "status", "current_period_end", "cancel_at_period_end", "stripe_subscription_id")
    readonly_fields = fields
    show_change_link = True
    ordering = ("-created_at",)


register_company_inline(BillingProfileInline)
register_company_inline(SubscriptionInline)
register_company_action(admin_actions.billing_create_customer, permission="billing.add_billingprofile")
register_company_action(admin_actions.billing_subscribe, permission=admin_actions.PERMISSION)
register_company_action(admin_actions.send_statement, permission="billing.send_statement")


def _profile_cards(profile: BillingProfile):
    """(cards, error): the customer's cards from Stripe, or why they cannot be shown."""
    try:
        return payment_methods_list(product_id=profile.product_id, company_id=profile.company_id), None
    except ApplicationError as error:
        return [], error.message


def billing_cards_panel(request, company) -> str:
    """Company page panel: each Stripe customer of the company and its cards (read from Stripe)."""
    if not request.user.has_perm("billing.view_billingprofile"):
        return ""
    rows = []
    for profile in BillingProfile.objects.filter(company=company).select_related("company", "product"):
        cards, error = _profile_cards(profile)
        rows.append({
            "profile": profile, "cards": cards, "error": error, "product_code": profile.product.code,
            "manage_url": reverse("admin:billing_billingprofile_cards", args=[profile.pk]),
        })
    return render_to_string("admin/billing/company_cards_panel.html", {"rows": rows}, request=request)


register_company_panel(billing_cards_panel)


@admin.register(BillingProfile)
class BillingProfileAdmin(ModelAdmin):
    list_display = ("company", "product", "stripe_customer_id", "created_at")
    list_filter = ("product",)
    search_fields = ("stripe_customer_id", "company__name", "company__short_id", "company__domain")
    raw_id_fields = ("company",)
    list_select_related = ("company", "product")
    readonly_fields = ("created_at", "updated_at", "cards_link")

    @admin.display(description="cards")
    def cards_link(self, obj):
        if obj.pk is None:
            return "—"
        return format_html('<a href="{}">Cards</a>', reverse("admin:billing_billingprofile_cards", args=[obj.pk]))

    def get_urls(self):
        return [
            path("<uuid:profile_id>/cards/", self.admin_site.admin_view(self.cards_view), name="billing_billingprofile_cards"),
            *super().get_urls(),
        ]

    def cards_view(self, request, profile_id):
        """The customer's cards; Billing admins make one the default or remove
        it — through the same services as the API."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        profile = get_object_or_404(BillingProfile.objects.select_related("company"), pk=profile_id)
        can_change = self.has_change_permission(request, profile)
        if request.method == "POST":
            if not can_change:
                raise PermissionDenied
            operation = payment_method_set_default if request.POST.get("op") == "default" else payment_method_detach
            try:
                operation(
                    product_id=profile.product_id,
                    company_id=profile.company_id,
                    payment_method_id=request.POST.get("payment_method", ""),
                    actor=Actor.for_user(request.user),
                )
            except ApplicationError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                done = "is now the default" if operation is payment_method_set_default else "was removed"
                self.message_user(request, f"Card {request.POST.get('payment_method')} {done}.", messages.SUCCESS)
            return redirect("admin:billing_billingprofile_cards", profile_id=profile.pk)
        cards, error = _profile_cards(profile)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Cards of {profile.company}",
            "opts": self.model._meta,
            "profile": profile,
            "cards": cards,
            "error": error,
            "can_change": can_change,
        }
        return TemplateResponse(request, "admin/billing/billingprofile_cards.html", context)


@admin.register(Subscription)
class SubscriptionAdmin(SimpleHistoryAdmin, ModelAdmin):
    list_display = ("__str__", "company", "product", "tier", "status", "current_period_end", "cancel_at_period_end")
    list_filter = ("status", "product", "tier", "cancel_at_period_end")
    search_fields = ("stripe_subscription_id", "stripe_customer_id", "checkout_session_id", "company__name", "company__short_id")
    list_select_related = ("company", "product", "tier")
    raw_id_fields = ("company",)
    # A mirror of Stripe: state changes come from Stripe (webhooks), not from here.
    readonly_fields = (
        "company", "product", "stripe_subscription_id", "stripe_customer_id", "status", "tier",
        "current_period_start", "current_period_end", "cancel_at_period_end", "canceled_at", "trial_end",
        "checkout_session_id", "price_ids", "created_at", "updated_at",
    )
    fields = ("display_name", *readonly_fields)
    show_full_result_count = False
    # Through Stripe, by the same services as the API (billing/admin_actions.py).
    actions = [admin_actions.change_tier, admin_actions.cancel, admin_actions.resume]

    def has_add_permission(self, request):
        return False


# --- invoices -------------------------------------------------------------------------------


def money(amount: int | None, currency: str) -> str:
    """Minor units shown in currency units: 4900, "eur" → "49.00 EUR"."""
    if amount is None:
        return "—"
    return f"{amount / 100:,.2f} {currency.upper()}"


INVOICES_ON_COMPANY_PAGE = 10


def billing_invoices_panel(request, company) -> str:
    """Company page panel: the latest mirrored invoices, totals in currency units, links to Stripe."""
    if not request.user.has_perm("billing.view_invoice"):
        return ""
    invoices = Invoice.objects.filter(company=company).select_related("product").order_by("-stripe_created_at", "-id")
    count = invoices.count()
    rows = [{"invoice": invoice, "total": money(invoice.total, invoice.currency),
             "paid": money(invoice.amount_paid, invoice.currency), "due": money(invoice.amount_due, invoice.currency)}
            for invoice in invoices[:INVOICES_ON_COMPANY_PAGE]]
    return render_to_string("admin/billing/company_invoices_panel.html", {
        "invoices": rows, "more": count if count > INVOICES_ON_COMPANY_PAGE else 0,
        "list_url": reverse("admin:billing_invoice_changelist") + f"?company__id__exact={company.pk}",
    }, request=request)


register_company_panel(billing_invoices_panel)


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """Mirror of Stripe's invoices (invoice webhooks, `manage.py sync_invoices`)."""

    list_display = ("number_or_id", "company", "product", "status", "billing_reason", "total_display",
                    "paid_display", "period_start", "period_end", "links")
    list_filter = ("status", "billing_reason", "product")
    search_fields = ("stripe_invoice_id", "number", "stripe_customer_id", "company__name", "company__short_id")
    list_select_related = ("company", "product")
    show_full_result_count = False

    @admin.display(description="Invoice")
    def number_or_id(self, obj: Invoice) -> str:
        return obj.number or obj.stripe_invoice_id

    @admin.display(description="Total")
    def total_display(self, obj: Invoice) -> str:
        return money(obj.total, obj.currency)

    @admin.display(description="Paid")
    def paid_display(self, obj: Invoice) -> str:
        return money(obj.amount_paid, obj.currency)

    @admin.display(description="Stripe")
    def links(self, obj: Invoice) -> str:
        parts = []
        if obj.hosted_invoice_url:
            parts.append(format_html('<a href="{}" target="_blank" rel="noopener">hosted page</a>', obj.hosted_invoice_url))
        if obj.invoice_pdf:
            parts.append(format_html('<a href="{}" target="_blank" rel="noopener">PDF</a>', obj.invoice_pdf))
        return format_html(" · ".join(["{}"] * len(parts)), *parts) if parts else "—"


# --- credit purchases ---------------------------------------------------------------------


@admin.register(CreditPurchase)
class CreditPurchaseAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """Credits bought through Stripe (SPEC §7): written by the purchase
    services only; *Refund purchase…* (Billing admin) goes through Stripe."""

    list_display = ("created_at", "company", "product", "credits", "price", "status", "refunded", "credits_reversed",
                    "disputed", "origin")
    list_filter = ("status", "origin", "disputed", "product")
    search_fields = ("stripe_payment_intent_id", "stripe_charge_id", "company__name", "company__short_id")
    list_select_related = ("company", "product")
    show_full_result_count = False
    actions = [admin_actions.refund_purchase]

    @admin.display(description="Price")
    def price(self, obj: CreditPurchase) -> str:
        return money(obj.amount, obj.currency)

    @admin.display(description="Refunded")
    def refunded(self, obj: CreditPurchase) -> str:
        return money(obj.amount_refunded, obj.currency) if obj.amount_refunded else "—"


# --- prices -------------------------------------------------------------------------------


@admin.register(Price)
class PriceAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """Mirror of Stripe's prices (price webhooks, `manage.py sync_prices`)."""

    list_display = (
        "stripe_price_id", "product_name", "nickname", "amount", "billed_every", "usage_type", "active", "synced_at",
    )
    list_filter = ("active", "currency", "interval", "usage_type", "livemode")
    search_fields = ("stripe_price_id", "stripe_product_id", "product_name", "nickname", "lookup_key")
    ordering = ("product_name", "stripe_product_id", "interval", "unit_amount")
    actions = ["refresh_from_stripe"]
    fields = (
        "stripe_price_id", "stripe_product_id", "product_name", "nickname", "lookup_key", "amount",
        "unit_amount", "unit_amount_decimal", "currency", "billed_every", "monthly", "usage_type", "active",
        "livemode", "stripe_created_at", "synced_at",
    )
    readonly_fields = fields

    @admin.display(description="amount", ordering="unit_amount")
    def amount(self, obj: Price) -> str:
        if obj.unit_amount_decimal is None:
            return "—"
        return f"{obj.unit_amount_decimal / 100:,.2f} {obj.currency.upper()}"

    @admin.display(description="billed every", ordering="interval")
    def billed_every(self, obj: Price) -> str:
        if not obj.interval:
            return "once"
        count = obj.interval_count or 1
        return obj.interval if count == 1 else f"{count} {obj.interval}s"

    @admin.display(description="per month (MRR)")
    def monthly(self, obj: Price) -> str:
        monthly = price_monthly_amount(price=obj)
        return "—" if monthly is None else f"{monthly / 100:,.2f} {obj.currency.upper()}"

    def has_refresh_from_stripe_permission(self, request) -> bool:
        return request.user.has_perm("billing.view_price")

    @admin.action(description="Re-read selected prices from Stripe", permissions=["refresh_from_stripe"])
    def refresh_from_stripe(self, request, queryset):
        refreshed = 0
        try:
            for stripe_price_id in queryset.values_list("stripe_price_id", flat=True):
                price_refresh(stripe_price_id=stripe_price_id)
                refreshed += 1
        except ApplicationError as error:
            self.message_user(request, f"Re-read {refreshed} price(s), then: {error.message}", messages.ERROR)
            return
        self.message_user(request, f"Re-read {refreshed} price(s) from Stripe.", messages.SUCCESS)


# --- webhook events ---------------------------------------------------------------------


@admin.register(StripeWebhookEvent)
class StripeWebhookEventAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ("stripe_event_id", "type", "status", "attempts", "received_at", "processed_at", "short_error")
    list_filter = ("status", "type", "livemode")
    search_fields = ("stripe_event_id", "type")
    date_hierarchy = "received_at"
    ordering = ("-received_at",)
    show_full_result_count = False
    actions = ["reprocess"]
    fields = (
        "stripe_event_id", "type", "status", "attempts", "received_at", "processed_at",
        "processing_error", "result_pretty", "payload_pretty", "livemode", "api_version",
    )
    readonly_fields = fields

    @admin.display(description="error")
    def short_error(self, obj):
        return (obj.processing_error or "")[:80]

    @admin.display(description="result")
    def result_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2, sort_keys=True))

    @admin.display(description="payload")
    def payload_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    def has_reprocess_permission(self, request):
        return request.user.has_perm("billing.reprocess_webhook")

    @admin.action(description="Reprocess selected events", permissions=["reprocess"])
    def reprocess(self, request, queryset):
        counts = webhook_events_reprocess(webhook_event_ids=queryset.values_list("pk", flat=True))
        level = messages.WARNING if counts["failed"] else messages.SUCCESS
        self.message_user(
            request,
            f"Processed {counts['processed']}, failed {counts['failed']}, skipped {counts['skipped']} (already processed).",
            level,
        )


# --- meter drift ------------------------------------------------------------------------


@admin.register(MeterDrift)
class MeterDriftAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = (
        "stripe_customer_id", "company", "meter_event_name", "window_start", "window_end",
        "delivered_value", "stripe_value", "difference", "resolved_at", "note",
    )
    list_filter = (("resolved_at", admin.EmptyFieldListFilter), "meter_event_name")
    search_fields = ("stripe_customer_id", "meter_event_name", "company__name")
    list_select_related = ("company",)
    date_hierarchy = "window_start"
    show_full_result_count = False


class CompanySubscriptionStatusFilter(admin.SimpleListFilter):
    """For the Company list (SPEC §9 "filter by subscription status")."""

    title = "subscription status"
    parameter_name = "subscription_status"

    def lookups(self, request, model_admin):
        from .models import SubscriptionStatus

        return [("none", "No subscription"), *SubscriptionStatus.choices]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value == "none":
            return queryset.filter(subscriptions__isnull=True)
        return queryset.filter(subscriptions__status=value).distinct()


register_company_list_filter(CompanySubscriptionStatusFilter)


def company_subscription_summary(request, company) -> list[dict]:
    """Header facts of the customer overview: each subscription, its status
    and the end of its current period (SPEC §9)."""
    subscriptions = Subscription.objects.filter(company=company).select_related("product", "tier").order_by("-current_period_end")[:3]
    parts = []
    for subscription in subscriptions:
        tier = subscription.tier.name if subscription.tier else subscription.display_name or subscription.product.code
        end = subscription.current_period_end.strftime("%d %b %Y") if subscription.current_period_end else "—"
        parts.append(f"{tier} · {subscription.get_status_display()} · until {end}")
    return [{"label": "Subscription", "value": "; ".join(parts) or "none"}]


register_company_summary(company_subscription_summary)
