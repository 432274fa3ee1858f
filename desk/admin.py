"""The support desk's part of the customer overview (SPEC §9): the
*Suspend…* / *Reactivate…* buttons (Billing admin, through desk's services)
and the cross-app timeline tab (desk is the last app: it may read every
app's rows, and composes them in `desk.selectors.company_timeline`)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse

from companies import admin_extensions
from companies.models import Account, Company, CompanyStatus, Product
from config.errors import ApplicationError

from . import selectors, services

SUSPEND_PERMISSION = "companies.suspend_account"


class ProductChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, product: Product) -> str:
        return f"{product.name} ({product.code})"


class AccountStatusForm(forms.Form):
    """Which product's account and why (the reason goes to the history and
    to the product in `company.status_changed`)."""

    product = ProductChoiceField(queryset=Product.objects.none(), empty_label=None)
    reason = forms.CharField(max_length=services.MAX_REASON_LENGTH, widget=forms.TextInput(attrs={"size": 60}))

    def __init__(self, *args, accounts: list[Account], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = Product.objects.filter(pk__in={a.product_id for a in accounts}).order_by("code")


def _status_action(modeladmin, request, queryset, *, suspend: bool):
    if not request.user.has_perm(SUSPEND_PERMISSION):
        modeladmin.message_user(request, "Only a Billing admin may suspend or reactivate.", messages.ERROR)
        return None
    companies = list(queryset.order_by("name"))
    accounts = list(
        Account.objects.filter(company__in=companies).select_related("company", "product").order_by("company__name", "product__code")
    )
    # What will change, per account: suspend acts on accounts not suspended, reactivate on suspended ones.
    candidates = [a for a in accounts if (a.status != CompanyStatus.SUSPENDED) == suspend]
    form = AccountStatusForm(request.POST if "apply" in request.POST else None, accounts=candidates)
    if form.is_bound and form.is_valid():
        product, reason = form.cleaned_data["product"], form.cleaned_data["reason"]
        service = services.account_suspend if suspend else services.account_reactivate
        actor = f"user:{request.user.get_username()}"
        errors = []
        for account in [a for a in candidates if a.product_id == product.pk]:
            try:
                change = service(company=account.company, product_id=product.pk, reason=reason, actor=actor)
            except ApplicationError as error:
                errors.append(f"{account.company.name}: {error.message}")
                continue
            modeladmin.message_user(
                request,
                f"{account.company.name} · {product.code}: {change.previous_status} → {change.status}.",
                messages.SUCCESS,
            )
        if not errors:
            return None
        form.add_error(None, "; ".join(errors))
    rows = [
        {
            "account": account,
            "after": CompanyStatus.SUSPENDED.label if suspend
            else CompanyStatus(account.status_before_suspension or CompanyStatus.ACTIVE).label,
        }
        for account in candidates
    ]
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Suspend accounts" if suspend else "Reactivate accounts",
        "opts": modeladmin.model._meta,
        "companies": companies,
        "form": form,
        "rows": rows,
        "suspend": suspend,
        "action_name": "desk_suspend" if suspend else "desk_reactivate",
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/desk/account_status.html", context)


@admin.action(description="Suspend…")
def desk_suspend(modeladmin, request, queryset):
    """Billing admin: every check of the account answers `canUse: false`
    until reactivated; nothing is deleted (desk.services.account_suspend)."""
    return _status_action(modeladmin, request, queryset, suspend=True)


@admin.action(description="Reactivate…")
def desk_reactivate(modeladmin, request, queryset):
    """Billing admin: the account gets back the status it had before."""
    return _status_action(modeladmin, request, queryset, suspend=False)


admin_extensions.register_company_action(desk_suspend, permission=SUSPEND_PERMISSION)
admin_extensions.register_company_action(desk_reactivate, permission=SUSPEND_PERMISSION)


# --- Timeline tab -----------------------------------------------------------------------------


def company_timeline_panel(request, company: Company) -> str:
    """The Timeline tab: one page of `selectors.company_timeline`, with
    older/newer links (`?timeline_page=` on the company page)."""
    if not request.user.has_perm("companies.view_company"):
        return ""
    try:
        page = int(request.GET.get("timeline_page") or 1)
    except ValueError:
        page = 1
    timeline = selectors.company_timeline(company_id=company.pk, page=page)
    return render_to_string(
        "admin/desk/company_timeline.html",
        {
            "timeline": timeline,
            "newer_url": selectors.company_timeline_url(company.pk, timeline.page - 1) if timeline.has_previous else None,
            "older_url": selectors.company_timeline_url(company.pk, timeline.page + 1) if timeline.has_next else None,
        },
        request=request,
    )


company_timeline_panel.tab = "Timeline"
admin_extensions.register_company_panel(company_timeline_panel)
