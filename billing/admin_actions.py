"""Billing admin actions that change money: subscribe a company to a tier in
Stripe, change a subscription's tier, cancel it, undo a pending cancel. Each
shows an intermediate confirmation form (Django's delete_selected pattern)
with a required reason and calls the same service as the API — the form
shows the service's error (a declined card, Stripe down) instead of a 500.
Only staff with `billing.change_subscription` (`billing.add_billingprofile`
for creating customers) — the Billing admin role — may run them."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from config.errors import ApplicationError
from companies.models import Product
from companies.actors import Actor
from entitlements.models import Tier

from .services.customers import stripe_customer_ensure
from .services.purchases import purchase_refund
from .services.statements import statement_send
from .services.subscription_lifecycle import (
    PRORATION_BEHAVIORS,
    subscription_cancel,
    subscription_change,
    subscription_create,
    subscription_resume,
)

PERMISSION = "billing.change_subscription"


class _ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"size": 60}))


class _TierField(forms.ModelChoiceField):
    def label_from_instance(self, tier):
        return f"{tier.product.code} · {tier.name} ({tier.code})"


def _tiers():
    return Tier.objects.filter(is_active=True).select_related("product").order_by("product__code", "display_order", "code")


class SubscribeForm(_ReasonForm):
    tier = _TierField(queryset=Tier.objects.none())
    trial_period_days = forms.IntegerField(min_value=1, max_value=730, required=False,
                                           help_text="Optional; without a trial the company's default card is charged now.")
    # Rendered once with the form: submitting the page twice subscribes once.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier"].queryset = _tiers()
        if not self.is_bound:
            self.initial["idempotency_key"] = uuid.uuid4().hex


class CustomerForm(forms.Form):
    product = forms.ModelChoiceField(queryset=Product.objects.order_by("code"))
    email = forms.EmailField(required=False, help_text="Optional: the address Stripe sends invoices and receipts to.")


class ChangeTierForm(_ReasonForm):
    tier = _TierField(queryset=Tier.objects.none())
    proration_behavior = forms.ChoiceField(choices=[(b, b) for b in PRORATION_BEHAVIORS], initial="create_prorations")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier"].queryset = _tiers()


class CancelForm(_ReasonForm):
    at_period_end = forms.BooleanField(required=False, initial=True,
                                       help_text="Unticked: cancel now; access falls back to the default tier at once.")


def _run(modeladmin, request, queryset, *, form_class, title, action_name, summary, submit_label, apply_one,
         permission=PERMISSION):
    """The intermediate page: show the form; on submit call `apply_one(obj,
    cleaned_data)` for every selected object, stopping at the first error."""
    if not request.user.has_perm(permission):
        modeladmin.message_user(request, "You may not do this.", messages.ERROR)
        return None
    objects = list(queryset)
    form = form_class(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        done = []
        try:
            for obj in objects:
                done.append(apply_one(obj, form.cleaned_data))
        except ApplicationError as error:
            form.add_error(None, f"{error.message}" + (f" (after {len(done)} done)" if done else ""))
        else:
            for message in done:
                modeladmin.message_user(request, message, messages.SUCCESS)
            return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": modeladmin.model._meta,
        "companies": objects,  # the selected objects, carried as hidden inputs
        "objects": objects,
        "summary": summary,
        "submit_label": submit_label,
        "form": form,
        "action_name": action_name,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/billing/subscription_action.html", context)


def _actor(request) -> Actor:
    return Actor.for_user(request.user)


@admin.action(description="Subscribe to a tier in Stripe…")
def billing_subscribe(modeladmin, request, queryset):
    def apply_one(company, data):
        tier = data["tier"]
        result = subscription_create(
            product_id=tier.product_id,
            company_id=company.pk,
            tier_code=tier.code,
            trial_period_days=data.get("trial_period_days"),
            idempotency_key=f"admin-{data['idempotency_key']}",
            reason=data["reason"],
            actor=_actor(request),
        )
        return f"{company.name}: subscribed to {tier.code} ({result.subscription.status}, {result.subscription.stripe_subscription_id})."

    return _run(modeladmin, request, queryset.order_by("name"), form_class=SubscribeForm,
                title="Subscribe to a tier in Stripe", action_name="billing_subscribe",
                summary="A Stripe subscription to the tier's base fee and feature prices is created for each company "
                        "(its Stripe customer first, if it has none) and charged to the company's default card, "
                        "unless a trial is given. A declined card stops here and nothing is created.",
                submit_label="Subscribe", apply_one=apply_one)


@admin.action(description="Create Stripe customer…")
def billing_create_customer(modeladmin, request, queryset):
    def apply_one(company, data):
        result = stripe_customer_ensure(
            product_id=data["product"].pk, company_id=company.pk, email=data.get("email") or None, actor=_actor(request)
        )
        verb = "created" if result.created else "already had"
        return f"{company.name}: {verb} Stripe customer {result.stripe_customer_id} for {data['product'].code}."

    return _run(modeladmin, request, queryset.order_by("name"), form_class=CustomerForm,
                title="Create Stripe customers", action_name="billing_create_customer",
                summary="Each company gets its Stripe customer in the product (named after the company); "
                        "a company that has one keeps it. Cards are then added by the company in the product's page.",
                submit_label="Create customers", apply_one=apply_one, permission="billing.add_billingprofile")


@admin.action(description="Change tier…")
def change_tier(modeladmin, request, queryset):
    def apply_one(subscription, data):
        result = subscription_change(
            product_id=subscription.product_id,
            subscription_id=subscription.pk,
            tier_code=data["tier"].code,
            proration_behavior=data["proration_behavior"],
            reason=data["reason"],
            actor=_actor(request),
        )
        return f"{subscription}: now {result.tier_code}."

    return _run(modeladmin, request, queryset.select_related("company", "tier"), form_class=ChangeTierForm,
                title="Change the tier of subscriptions", action_name="change_tier",
                summary="The Stripe items are swapped to the new tier's prices (prorated as chosen: "
                        "create_prorations bills the difference on the next invoice, always_invoice now, none not at all) "
                        "and the tier is applied to the company.",
                submit_label="Change tier", apply_one=apply_one)


@admin.action(description="Cancel…")
def cancel(modeladmin, request, queryset):
    def apply_one(subscription, data):
        result = subscription_cancel(
            product_id=subscription.product_id,
            subscription_id=subscription.pk,
            at_period_end=data["at_period_end"],
            reason=data["reason"],
            actor=_actor(request),
        )
        when = "at period end" if result.subscription.cancel_at_period_end else "now"
        return f"{subscription}: canceled {when}."

    return _run(modeladmin, request, queryset.select_related("company", "tier"), form_class=CancelForm,
                title="Cancel subscriptions", action_name="cancel",
                summary="Cancelled in Stripe. At period end, access stays until the paid period ends and the "
                        "cancellation can be undone (Resume); now, the company falls back to the default tier at once.",
                submit_label="Cancel subscriptions", apply_one=apply_one)


@admin.action(description="Resume (undo a pending cancel)…")
def resume(modeladmin, request, queryset):
    def apply_one(subscription, data):
        subscription_resume(
            product_id=subscription.product_id, subscription_id=subscription.pk, reason=data["reason"], actor=_actor(request)
        )
        return f"{subscription}: will renew again."

    return _run(modeladmin, request, queryset.select_related("company", "tier"), form_class=_ReasonForm,
                title="Resume subscriptions", action_name="resume",
                summary="The pending cancellation at period end is undone in Stripe; the subscriptions renew as before.",
                submit_label="Resume", apply_one=apply_one)


# --- credit purchases -------------------------------------------------------------------------


class RefundPurchaseForm(_ReasonForm):
    amount = forms.DecimalField(
        required=False, min_value=Decimal("0.01"), decimal_places=2,
        help_text="In currency units (e.g. 12.50); empty: refund all that is left.",
    )


@admin.action(description="Refund purchase…")
def refund_purchase(modeladmin, request, queryset):
    def apply_one(purchase, data):
        amount = data.get("amount")
        minor = int((amount * 100).to_integral_value()) if amount is not None else None
        result = purchase_refund(purchase_id=purchase.pk, amount=minor, reason=data["reason"], actor=_actor(request))
        return (f"{purchase.company}: refunded, {result.amount_refunded / 100:.2f} {result.currency.upper()} in total; "
                f"{result.credits_reversed} credits taken back.")

    return _run(modeladmin, request, queryset.select_related("company"), form_class=RefundPurchaseForm,
                title="Refund credit purchase", action_name="refund_purchase",
                summary="Each purchase is refunded at Stripe (the amount given, or all that is left), and the "
                        "matching share of its credits, round(credits × refunded / amount), is taken back; what the "
                        "wallet no longer holds becomes debt.",
                submit_label="Refund", apply_one=apply_one, permission="billing.refund_creditpurchase")


# --- statements -------------------------------------------------------------------------------


class SendStatementForm(forms.Form):
    product = forms.ModelChoiceField(queryset=Product.objects.order_by("code"))
    date_from = forms.DateField(label="From", help_text="First day included (YYYY-MM-DD, UTC).")
    date_to = forms.DateField(label="To", help_text="Last day included.")
    email = forms.EmailField(required=False, help_text="Empty: each company's primary contact.")


@admin.action(description="Send statement…")
def send_statement(modeladmin, request, queryset):
    def apply_one(company, data):
        statement, email = statement_send(product_id=data["product"].pk, company_id=company.pk,
                                          start=data["date_from"], end=data["date_to"], email=data.get("email") or None)
        return f"{company.name}: statement sent to {email} (total {statement.total / 100:.2f} {statement.currency.upper()})."

    return _run(modeladmin, request, queryset.order_by("name"), form_class=SendStatementForm,
                title="Send usage statement", action_name="send_statement",
                summary="Each company's usage statement for the product and period (base fees, billable usage × "
                        "unit price, credits, invoices) is emailed as HTML with a CSV attachment.",
                submit_label="Send", apply_one=apply_one, permission="billing.send_statement")
