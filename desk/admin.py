"""The desk in the admin (SPEC §9): *Merge into…* on the company page
(Billing admin), the merge records (read-only) and the tombstone shown on a
merged company; *Suspend…* / *Reactivate…* (Billing admin, through desk's
services); and the cross-app timeline tab (desk is the last app: it may read
every app's rows, composed in `desk.selectors.company_timeline`)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from unfold.admin import ModelAdmin

from companies import admin_extensions
from companies.actors import Actor
from companies.admin_extensions import ReadOnlyAdminMixin
from companies.models import Account, Company, CompanyStatus, Product
from config.errors import ApplicationError

from . import selectors, services
from .models import CompanyMerge
from .services import company_merge, company_merge_preview
from .services.merge import MOVED_KEYS

MERGE_PERMISSION = "desk.merge_companies"

# What each count of the preview means, in words (the order of the SPEC §3 answer, then each app's detail).
MOVED_LABELS = {
    "contacts": "contacts move (same email: folded into the kept company's contact; its primary stays primary)",
    "links": "product links move (linkType merged: the duplicate's external ids answer the kept company)",
    "overrides": "access overrides the kept company lacks come over (its own overrides and tier stay)",
    "meters": "usage meters move or are added to the kept company's meter of the same period",
    "events": "usage events are re-pointed (never edited otherwise)",
    "wallets": "credit wallets are emptied into the kept company's (a transfer on both ledgers, lots keep their expiry)",
    "subscriptions": "subscriptions move (with billing profiles, invoices and purchases)",
}
DETAIL_LABELS = {
    "contactsDeduplicated": "of those contacts had an email the kept company already has",
    "accounts": "product accounts move or are combined",
    "credits": "credits move",
    "billingProfiles": "billing profiles move",
    "invoices": "invoices move",
    "purchases": "credit purchases move",
    "statusChanges": "status history entries move",
    "snapshots": "usage snapshots are re-pointed",
    "rollups": "daily usage rollups are summed",
}


def _find_company(value: str, *, duplicate: Company) -> Company | None:
    """The company to keep, by shortId (in the duplicate's pool) or id."""
    value = (value or "").strip()
    companies = Company.objects.filter(customer_pool=duplicate.customer_pool)
    found = companies.filter(short_id=value).first()
    if found is None:
        try:
            found = companies.filter(pk=value).first()
        except (ValueError, Exception):  # noqa: BLE001 - not a UUID
            found = None
    return found


def merge_candidates(duplicate: Company, *, limit: int = 20) -> list[Company]:
    """Likely originals of a duplicate, for the form's suggestions: live
    companies of its pool with the same domain or a name that starts alike."""
    words = (duplicate.match_name or "").split()
    condition = Q(match_name__startswith=words[0]) if words else Q(pk__in=[])
    if duplicate.domain:
        condition |= Q(domain=duplicate.domain)
    return list(
        Company.objects.filter(condition, customer_pool=duplicate.customer_pool, merged_into__isnull=True)
        .exclude(pk=duplicate.pk)
        .order_by("name")[:limit]
    )


class MergeForm(forms.Form):
    # The server says what is missing, next to the field (SPEC §9), not the browser's bubble.
    use_required_attribute = False

    into = forms.CharField(
        label="Merge into (the company that stays)",
        max_length=100,
        help_text="Its shortId (e.g. acme-inc) or id. This company becomes a tombstone pointing to it.",
        widget=forms.TextInput(attrs={"list": "merge-candidates", "autocomplete": "off"}),
    )
    reason = forms.CharField(
        label="Reason",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        help_text="Required. Kept in both companies' history and sent to the products (company.merged).",
    )

    def __init__(self, *args, duplicate: Company, **kwargs):
        super().__init__(*args, **kwargs)
        self.duplicate = duplicate

    def clean_into(self):
        kept = _find_company(self.cleaned_data["into"], duplicate=self.duplicate)
        if kept is None:
            raise forms.ValidationError("No company with this shortId or id in the same customer pool.")
        return kept

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why the companies are merged.")
        return reason


def _error_to_form(form: MergeForm, error: ApplicationError) -> None:
    fields = (error.details or {}).get("fields") or {}
    placed = False
    for api_name, field in (("intoCompanyId", "into"), ("reason", "reason")):
        for message in fields.get(api_name, []):
            form.add_error(field, message)
            placed = True
    if not placed:
        form.add_error(None, error.message)


@admin.action(description="Merge into…")
def desk_merge_action(modeladmin, request, queryset):
    """Billing admin: merge this duplicate into the company that stays
    (SPEC §3). Step one asks for the kept company and the reason and shows
    the preview (what moves, per app, from `company_merge_preview`: the merge
    itself, rolled back); step two merges."""
    if not request.user.has_perm(MERGE_PERMISSION):
        raise PermissionDenied("Only a Billing admin may merge companies.")
    companies = list(queryset[:2])
    if len(companies) != 1:
        modeladmin.message_user(request, "Choose exactly one duplicate to merge.", messages.ERROR)
        return None
    duplicate = companies[0]
    if duplicate.merged_into_id:
        modeladmin.message_user(request, f"{duplicate} was already merged.", messages.ERROR)
        return None
    bound = "preview" in request.POST or "confirm" in request.POST
    form = MergeForm(request.POST if bound else None, duplicate=duplicate)
    preview = None
    actor = Actor.for_user(request.user)
    if bound and form.is_valid():
        kept, reason = form.cleaned_data["into"], form.cleaned_data["reason"]
        try:
            if "confirm" in request.POST:
                result = company_merge(source=duplicate, target=kept, reason=reason, actor=actor)
                moved = ", ".join(f"{result.moved[key]} {key}" for key in MOVED_KEYS)
                modeladmin.message_user(request, f"{duplicate.name} was merged into {kept.name}: {moved}.", messages.SUCCESS)
                return redirect(reverse("admin:companies_company_change", args=[kept.pk]))
            preview = company_merge_preview(source=duplicate, target=kept, reason=reason, actor=actor)
        except ApplicationError as error:
            _error_to_form(form, error)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"Merge {duplicate.name} into…",
        "opts": modeladmin.model._meta,
        "companies": [duplicate],
        "duplicate": duplicate,
        "form": form,
        "candidates": merge_candidates(duplicate),
        "preview": preview,
        "kept": form.cleaned_data.get("into") if preview else None,
        "moved_rows": [(preview.moved[key], MOVED_LABELS[key]) for key in MOVED_KEYS] if preview else [],
        "detail_rows": [(value, DETAIL_LABELS[key]) for key, value in preview.detail.items() if key in DETAIL_LABELS and value]
        if preview else [],
        "action_name": "desk_merge_action",
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/desk/merge_company.html", context)


def tombstone_summary(request, company: Company) -> list[dict]:
    if not company.merged_into_id:
        return []
    return [{"label": "Merged into", "value": f"{company.merged_into.name} ({company.merged_at:%Y-%m-%d})"}]


def tombstone_banner(request, company: Company) -> str:
    """On a merged duplicate's page, first: where it went, when, who and why."""
    if not company.merged_into_id:
        return ""
    record = CompanyMerge.objects.filter(source=company).first()
    return format_html(
        '<div id="company-tombstone" class="errornote" role="status" style="border:1px solid rgb(253 230 138);'
        'background:rgb(254 252 232);padding:10px 14px;border-radius:6px">'
        "<strong>Merged.</strong> This company is a tombstone: it was merged into "
        '<a href="{}" class="underline font-semibold">{}</a> on {}{}. Reads by its id answer the kept company; '
        "writes to it are refused (409).{}</div>",
        reverse("admin:companies_company_change", args=[company.merged_into_id]),
        company.merged_into.name,
        f"{company.merged_at:%Y-%m-%d %H:%M} UTC" if company.merged_at else "",
        f" by {record.actor}" if record and record.actor else "",
        format_html(" Reason: {}", record.reason) if record else "",
    )


def company_merges_panel(request, company: Company) -> str:
    """The merges this company received (the timeline's merge entries, here
    until the timeline lists them)."""
    merges = list(CompanyMerge.objects.filter(target=company).order_by("-created_at")[:20])
    if not merges:
        return ""
    # format_html_join keeps the rows safe (a str.join of safe strings is plain text,
    # which the table below would escape).
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                f"{merge.created_at:%Y-%m-%d %H:%M}",
                merge.source_name,
                merge.actor,
                merge.reason,
                ", ".join(f"{merge.moved.get(key, 0)} {key}" for key in MOVED_KEYS),
            )
            for merge in merges
        ),
    )
    return format_html(
        '<h2 class="font-semibold mb-2">Merged duplicates</h2><table id="company-merges" class="w-full text-sm">'
        "<thead><tr><th>When (UTC)</th><th>Duplicate</th><th>Who</th><th>Why</th><th>Moved</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        rows,
    )


company_merges_panel.tab = "Merges"


@admin.register(CompanyMerge)
class CompanyMergeAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ("created_at", "source_name", "target", "actor", "reason")
    list_select_related = ("target",)
    search_fields = ("source_name", "target__name", "reason", "actor")
    raw_id_fields = ("source", "target")
    show_full_result_count = False


admin_extensions.register_company_action(desk_merge_action, permission=MERGE_PERMISSION)
admin_extensions.register_company_summary(tombstone_summary)
admin_extensions.register_company_panel(tombstone_banner, top=True, first=True)
admin_extensions.register_company_panel(company_merges_panel)


# --- Suspend / Reactivate ------------------------------------------------------------------

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
