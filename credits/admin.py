"""Credits in the back office (SPEC §9): the wallet on the company page
(balance by bucket, lots, the ledger newest first), the *Grant credits…*
action (required reason, preview of the balance after), *Freeze wallet…* /
*Unfreeze wallet…* (Billing admin, with a reason), and read-only wallet,
lot, ledger and reservation lists. Every action calls the same services as
the API."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from unfold.admin import ModelAdmin

from companies import admin_extensions
from companies.admin_extensions import ReadOnlyAdminMixin
from companies.models import Company, Product, ProductLink
from config.errors import ApplicationError

from . import selectors, services
from .models import AutoRefill, Bucket, CreditLot, LedgerEntry, RefillRequest, Reservation, Wallet, WalletEvent

GRANT_PERMISSION = "credits.grant_credits"
FREEZE_PERMISSION = "credits.freeze_wallet"
PANEL_LEDGER_ROWS = 20


def _staff(request) -> str:
    return f"user:{request.user.get_username()}"


def _company_link(obj) -> str:
    company = obj.company if isinstance(obj, Wallet) else obj.wallet.company
    url = reverse("admin:companies_company_change", args=[company.pk])
    return format_html('<a href="{}">{}</a>', url, company)


# --- Read-only lists ------------------------------------------------------------------


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["company_link", "product", "total", "balance_subscription", "balance_promotional",
                    "balance_topup", "debt", "reserved", "frozen", "low_balance_threshold"]
    list_filter = ["product", "frozen"]
    search_fields = ["company__name", "company__short_id"]
    list_select_related = ["company", "product"]
    show_full_result_count = False

    @admin.display(description="Company", ordering="company__name")
    def company_link(self, wallet):
        return _company_link(wallet)

    @admin.display(description="Total (lots − debt)")
    def total(self, wallet):
        return wallet.total


@admin.register(CreditLot)
class CreditLotAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["id", "company_link", "bucket", "amount", "remaining", "expires_at", "origin", "grant_reason",
                    "created_at"]
    list_filter = ["bucket", "origin", "wallet__product"]
    search_fields = ["wallet__company__name", "grant_reason", "stripe_invoice_id", "stripe_payment_intent_id"]
    list_select_related = ["wallet__company"]
    raw_id_fields = ["wallet", "transferred_from"]
    show_full_result_count = False

    @admin.display(description="Company")
    def company_link(self, lot):
        return _company_link(lot)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["created_at", "company_link", "kind", "amount", "balance_after", "description", "reason",
                    "job_id", "source_service", "actor"]
    list_filter = ["kind", "wallet__product", "created_at"]
    search_fields = ["job_id", "source_service", "reason", "idempotency_key", "wallet__company__name", "=id"]
    list_select_related = ["wallet__company"]
    raw_id_fields = ["wallet", "reference", "lot", "reservation"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description="Company")
    def company_link(self, entry):
        return _company_link(entry)


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["run_id", "company_link", "status", "amount", "charged", "usage_recorded", "released",
                    "charge_on_expiry", "expires_at", "created_at"]
    list_filter = ["status", "charge_on_expiry", "wallet__product"]
    search_fields = ["run_id", "wallet__company__name"]
    list_select_related = ["wallet__company"]
    raw_id_fields = ["wallet"]
    show_full_result_count = False

    @admin.display(description="Company")
    def company_link(self, reservation):
        return _company_link(reservation)


# --- Company page: the wallet panel -----------------------------------------------------


def company_credits_panel(request, company: Company) -> str:
    """Per product wallet: balance by bucket, debt, holds, live lots, and the
    latest ledger entries (newest first) with a link to the full ledger."""
    if not request.user.has_perm("credits.view_wallet"):
        return ""
    now = timezone.now()
    wallets = []
    for wallet in Wallet.objects.filter(company=company).select_related("product").order_by("product__code"):
        wallets.append(
            {
                "wallet": wallet,
                "summary": selectors.wallet_summary(wallet=wallet, now=now),
                "lots": list(
                    CreditLot.objects.filter(wallet=wallet, remaining__gt=0).order_by("expires_at", "created_at")
                ),
                "entries": list(LedgerEntry.objects.filter(wallet=wallet).order_by("-created_at", "-id")[:PANEL_LEDGER_ROWS]),
                "events": list(WalletEvent.objects.filter(wallet=wallet)[:5]),
                "ledger_url": reverse("admin:credits_ledgerentry_changelist") + f"?wallet__id__exact={wallet.pk}",
            }
        )
    return render_to_string(
        "admin/credits/company_credits_panel.html",
        {
            "wallets": wallets,
            "now": now,
            "can_grant": request.user.has_perm(GRANT_PERMISSION),
            "can_freeze": request.user.has_perm(FREEZE_PERMISSION),
        },
        request=request,
    )


# --- Actions ----------------------------------------------------------------------------


class _ProductField(forms.ModelChoiceField):
    def label_from_instance(self, product: Product) -> str:
        return f"{product.name} ({product.code})"


class _WalletActionForm(forms.Form):
    product = _ProductField(queryset=Product.objects.none(), help_text="Each product has its own wallet.")
    reason = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"size": 60}))

    def __init__(self, *args, companies, **kwargs):
        super().__init__(*args, **kwargs)
        self.companies = list(companies)
        product_ids = ProductLink.objects.filter(company__in=self.companies).values("product_id")
        self.fields["product"].queryset = Product.objects.filter(pk__in=product_ids).order_by("code")
        self.order_fields(["product", *[name for name in self.fields if name not in ("product", "reason")], "reason"])

    def clean(self):
        cleaned = super().clean()
        product = cleaned.get("product")
        if product is not None:
            unlinked = [c.name for c in self.companies if not c.links.filter(product=product).exists()]
            if unlinked:
                self.add_error("product", f"Not linked to {product.name}: {', '.join(unlinked)}.")
        return cleaned


class GrantCreditsForm(_WalletActionForm):
    amount = forms.IntegerField(min_value=1, max_value=2**62)
    bucket = forms.ChoiceField(choices=Bucket.choices, initial=Bucket.PROMOTIONAL)
    expires_at = forms.SplitDateTimeField(
        required=False, label="Expires at (UTC)", widget=admin.widgets.AdminSplitDateTime,
        help_text="Empty: never expires.",
    )

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("Must be in the future.")
        return value


def _grant_preview(companies, *, product, amount) -> list[dict]:
    """The balance before and after the grant, per company (debt is paid first)."""
    rows = []
    for company in companies:
        wallet = selectors.wallet_find(product_id=product.pk, company_id=company.pk)
        summary = selectors.wallet_summary(wallet=wallet)
        rows.append(
            {"company": company, "before": summary.total, "after": summary.total + amount, "debt": summary.debt,
             "debt_paid": min(summary.debt, amount)}
        )
    return rows


def _run_for_each(modeladmin, request, companies, call, describe) -> list:
    failed = []
    for company in companies:
        try:
            outcome = call(company)
        except ApplicationError as error:
            failed.append((company, error))
            modeladmin.message_user(request, f"{company.name}: {error.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{company.name}: {describe(outcome)}", messages.SUCCESS)
    return failed


@admin.action(description="Grant credits…")
def credits_grant_action(modeladmin, request, queryset):
    """Intermediate page: product, amount, bucket, expiry and a required
    reason; then a preview of each wallet's balance after; then the grant
    (once per wallet and reason, like the API)."""
    if not request.user.has_perm(GRANT_PERMISSION):
        modeladmin.message_user(request, "You may not grant credits.", messages.ERROR)
        return None
    companies = list(queryset.order_by("name"))
    form = GrantCreditsForm(request.POST if "apply" in request.POST else None, companies=companies)
    preview = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        if request.POST.get("confirmed") == "yes":
            _run_for_each(
                modeladmin, request, companies,
                lambda company: services.credits_grant(
                    company_id=company.pk, product_id=data["product"].pk, amount=data["amount"],
                    reason=data["reason"], bucket=data["bucket"], expires_at=data["expires_at"], actor=_staff(request),
                ),
                lambda result: (
                    f"granted {result.lot.amount} {result.lot.get_bucket_display().lower()} credits; balance "
                    f"{result.entry.balance_after}." if result.created
                    else "already granted for this reason; nothing changed."
                ),
            )
            return None
        preview = _grant_preview(companies, product=data["product"], amount=data["amount"])
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Grant credits",
        "opts": modeladmin.model._meta,
        "companies": companies,
        "form": form,
        "preview": preview,
        "balances": [(company, _balances(company)) for company in companies[:20]],
        "action_name": "credits_grant_action",
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/credits/grant_credits.html", context)


def _balances(company) -> list:
    return [
        (wallet, selectors.wallet_summary(wallet=wallet))
        for wallet in Wallet.objects.filter(company=company).select_related("product").order_by("product__code")
    ]


def _freeze_action(modeladmin, request, queryset, *, freeze: bool):
    if not request.user.has_perm(FREEZE_PERMISSION):
        modeladmin.message_user(request, "Only Billing admins may freeze or unfreeze wallets.", messages.ERROR)
        return None
    companies = list(queryset.order_by("name"))
    form = _WalletActionForm(request.POST if "apply" in request.POST else None, companies=companies)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data

        def call(company):
            wallet = selectors.wallet_find(product_id=data["product"].pk, company_id=company.pk)
            if wallet is None:
                wallet = services.wallet_get_or_create(company_id=company.pk, product_id=data["product"].pk)
            change = services.wallet_freeze if freeze else services.wallet_unfreeze
            return change(wallet=wallet, reason=data["reason"], actor=_staff(request))

        _run_for_each(modeladmin, request, companies, call,
                      lambda wallet: "wallet frozen." if wallet.frozen else "wallet not frozen.")
        return None
    action = "credits_freeze_action" if freeze else "credits_unfreeze_action"
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Freeze wallet" if freeze else "Unfreeze wallet",
        "freeze": freeze,
        "opts": modeladmin.model._meta,
        "companies": companies,
        "form": form,
        "balances": [(company, _balances(company)) for company in companies[:20]],
        "action_name": action,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/credits/freeze_wallet.html", context)


class ThresholdForm(_WalletActionForm):
    low_balance_threshold = forms.IntegerField(
        min_value=0, max_value=2**62, required=False, label="Low-balance threshold",
        help_text="credits.low_balance is sent each time the balance falls below it. Empty: never.",
    )


@admin.action(description="Set low-balance threshold…")
def credits_threshold_action(modeladmin, request, queryset):
    """Grant-credits permission (Support and Billing admin): the level below
    which the product is told that the wallet runs low."""
    if not request.user.has_perm(GRANT_PERMISSION):
        modeladmin.message_user(request, "You may not change credit wallets.", messages.ERROR)
        return None
    companies = list(queryset.order_by("name"))
    form = ThresholdForm(request.POST if "apply" in request.POST else None, companies=companies)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data

        def call(company):
            wallet = services.wallet_get_or_create(company_id=company.pk, product_id=data["product"].pk)
            return services.wallet_threshold_set(
                wallet=wallet, low_balance_threshold=data["low_balance_threshold"], reason=data["reason"],
                actor=_staff(request),
            )

        _run_for_each(modeladmin, request, companies, call,
                      lambda wallet: f"low-balance threshold {wallet.low_balance_threshold if wallet.low_balance_threshold is not None else 'off'}.")
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Set low-balance threshold",
        "opts": modeladmin.model._meta,
        "companies": companies,
        "form": form,
        "balances": [(company, _balances(company)) for company in companies[:20]],
        "action_name": "credits_threshold_action",
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/credits/wallet_threshold.html", context)


@admin.action(description="Freeze wallet…")
def credits_freeze_action(modeladmin, request, queryset):
    """Billing admin: refuse debits and holds (423) until unfrozen; refunds and grants still work."""
    return _freeze_action(modeladmin, request, queryset, freeze=True)


@admin.action(description="Unfreeze wallet…")
def credits_unfreeze_action(modeladmin, request, queryset):
    return _freeze_action(modeladmin, request, queryset, freeze=False)


admin_extensions.register_company_action(credits_grant_action, permission=GRANT_PERMISSION)
admin_extensions.register_company_action(credits_threshold_action, permission=GRANT_PERMISSION)
admin_extensions.register_company_action(credits_freeze_action, permission=FREEZE_PERMISSION)
admin_extensions.register_company_action(credits_unfreeze_action, permission=FREEZE_PERMISSION)
admin_extensions.register_company_panel(company_credits_panel)




@admin.register(RefillRequest)
class RefillRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Auto-refill attempts (SPEC §7): failures with Stripe's code and message."""

    list_display = ("created_at", "wallet", "status", "credits", "amount", "currency", "payment_intent_id",
                    "error_code", "error_message", "attempts")
    list_filter = ("status",)
    search_fields = ("wallet__company__name", "payment_intent_id", "error_code")
    list_select_related = ("wallet__company", "wallet__product")
    show_full_result_count = False


@admin.register(AutoRefill)
class AutoRefillAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Auto-refill settings per wallet (set by the product: PUT …/credits/auto-refill), with the last failure."""

    list_display = ("wallet", "enabled", "threshold", "credits", "amount", "currency", "monthly_spend_limit",
                    "last_failure_at", "last_failure_code", "last_failure_message")
    list_filter = ("enabled",)
    search_fields = ("wallet__company__name",)
    list_select_related = ("wallet__company", "wallet__product")


def company_wallet_summary(request, company: Company) -> list[dict]:
    """Header fact of the customer overview: the available credits per
    product wallet, and whether it is frozen."""
    parts = []
    for wallet in Wallet.objects.filter(company=company).select_related("product"):
        summary = selectors.wallet_summary(wallet=wallet)
        parts.append(f"{wallet.product.code}: {summary.available:,} credits" + (" (frozen)" if wallet.frozen else ""))
    return [{"label": "Wallet", "value": "; ".join(parts) or "no wallet"}]


admin_extensions.register_company_summary(company_wallet_summary)
