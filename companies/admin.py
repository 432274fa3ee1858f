"""The back office for customers, products and API keys (SPEC §9).

Saves go through companies.services wherever a rule lives (shortId
allocation, domain normalisation, primary-contact demotion, key hashing).
Apps further down the chain add inlines, actions and panels to the company
page through companies.admin_extensions."""

from __future__ import annotations

import logging

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe

from . import admin_extensions, services
from .domains import InvalidDomain, normalize_domain
from .models import ApiKey, Company, Contact, Product, ProductLink

logger = logging.getLogger(__name__)


# --- Forms ---------------------------------------------------------------------------


class CompanyAdminForm(forms.ModelForm):
    class Meta:
        model = Company
        fields = ["name", "short_id", "domain", "status", "mrr", "metadata", "created_at"]
        help_texts = {
            "short_id": "Leave empty to derive it from the name (acme-inc, acme-inc-2, …).",
            "domain": "Any form is accepted (https://www.acme.com/path); it is stored as acme.com.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "short_id" in self.fields:  # absent for view-only staff
            self.fields["short_id"].required = False

    def clean_domain(self):
        try:
            return normalize_domain(self.cleaned_data.get("domain") or "")
        except InvalidDomain as exc:
            raise ValidationError(str(exc)) from exc

    def clean_short_id(self):
        short_id = self.cleaned_data.get("short_id") or ""
        if not short_id and not self.instance._state.adding:
            raise ValidationError("A company keeps its shortId; it cannot be emptied.")
        return short_id


class ContactAdminForm(forms.ModelForm):
    avatar_url = forms.URLField(max_length=500, required=False, assume_scheme="https")

    class Meta:
        model = Contact
        fields = ["company", "email", "name", "role", "is_primary", "avatar_url", "metadata"]

    def clean_email(self):
        return (self.cleaned_data.get("email") or "").strip().lower()

    def _get_validation_exclusions(self):
        # "One primary per company" is kept by contact_save, which demotes
        # the previous primary; validating the constraint here would refuse
        # every change of primary contact.
        exclusions = super()._get_validation_exclusions()
        exclusions.add("is_primary")
        return exclusions


class ContactInlineFormSet(forms.BaseInlineFormSet):
    """The inline lists every contact of the company, so the whole set can
    be checked here: unique emails, at most one primary."""

    def clean(self):
        super().clean()
        emails: set[str] = set()
        primaries = 0
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data:
                continue
            if self.can_delete and self._should_delete_form(form):
                continue
            email = form.cleaned_data.get("email")
            if email in emails:
                form.add_error("email", "Another contact of this company has this email.")
            emails.add(email)
            primaries += bool(form.cleaned_data.get("is_primary"))
        if primaries > 1:
            raise ValidationError("Only one contact can be primary.")


# --- Company ---------------------------------------------------------------------------


class ContactInline(admin.TabularInline):
    model = Contact
    form = ContactAdminForm
    formset = ContactInlineFormSet
    fields = ["email", "name", "role", "is_primary", "avatar_url"]
    extra = 0
    show_change_link = True


class ProductLinkInline(admin.TabularInline):
    model = ProductLink
    fields = ["product", "external_org_id", "external_user_id", "label", "created_at"]
    readonly_fields = ["created_at"]
    extra = 0


class ProductFilter(admin.SimpleListFilter):
    title = "product"
    parameter_name = "product"

    def lookups(self, request, model_admin):
        return [(str(p.pk), p.code) for p in Product.objects.only("id", "code")]

    def queryset(self, request, queryset):
        if self.value():
            try:
                return queryset.filter(links__product_id=self.value()).distinct()
            except ValidationError:
                return queryset.none()
        return queryset


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    form = CompanyAdminForm
    change_form_template = "admin/companies/company/change_form.html"
    list_display = ["name", "short_id", "domain", "status", "mrr_display", "product_codes", "created_at"]
    list_filter = ["status", ProductFilter]
    # Exact for external ids (they are opaque), substring for the rest.
    search_fields = ["name", "domain", "short_id", "=links__external_org_id", "contacts__email"]
    search_help_text = "Name, domain, shortId, external org id (exact) or contact email."
    list_select_related = True
    show_full_result_count = False
    list_per_page = 50
    date_hierarchy = "created_at"
    readonly_fields = ["id", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "short_id", "domain", "status"]}),
        ("Revenue", {"fields": ["mrr"]}),
        ("Details", {"fields": ["metadata", "created_at", "updated_at", "id"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("links__product")

    @admin.display(description="MRR", ordering="mrr")
    def mrr_display(self, company: Company) -> str:
        return f"{company.mrr / 100:,.2f}"

    @admin.display(description="Products")
    def product_codes(self, company: Company) -> str:
        return ", ".join(sorted({link.product.code for link in company.links.all()})) or "—"

    def _can_change_company_fields(self, request) -> bool:
        return super().has_change_permission(request)

    def has_change_permission(self, request, obj=None):
        """Support may not edit a company's own fields, but must be able to
        save its page to edit the inlines it owns (contacts, feature access)."""
        if super().has_change_permission(request, obj):
            return True
        return any(
            inline(self.model, self.admin_site).has_change_permission(request, obj)
            or inline(self.model, self.admin_site).has_add_permission(request, obj)
            for inline in self.get_inlines(request, obj)
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not self._can_change_company_fields(request):
            return [field for fieldset in self.fieldsets for field in fieldset[1]["fields"]]
        return super().get_readonly_fields(request, obj)

    def get_list_filter(self, request):
        return [*self.list_filter, *admin_extensions.COMPANY_LIST_FILTERS]

    def get_inlines(self, request, obj):
        return [ContactInline, ProductLinkInline, *admin_extensions.COMPANY_INLINES]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not actions and (self.actions is None or "_popup" in request.GET):
            return actions
        extra = [self.get_action(action) for action in admin_extensions.COMPANY_ACTIONS]
        for func, name, description in self._filter_actions_by_permissions(request, [a for a in extra if a]):
            actions[name] = (func, name, description)
        return actions

    def _panels(self, request, company: Company) -> list[str]:
        rendered = []
        for panel in admin_extensions.COMPANY_PANELS:
            try:
                rendered.append(mark_safe(panel(request, company)))
            except Exception:
                # One broken panel must not take the customer page down.
                logger.exception("company panel failed", extra={"panel": getattr(panel, "__name__", str(panel))})
                rendered.append(mark_safe('<p class="errornote">This panel could not be shown.</p>'))
        return rendered

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        if object_id:
            company = self.get_object(request, object_id)
            if company is not None:
                extra_context["company_panels"] = self._panels(request, company)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
        else:
            services.company_insert(company=obj)

    def save_formset(self, request, form, formset, change):
        if formset.model is not Contact:
            return super().save_formset(request, form, formset, change)
        instances = formset.save(commit=False)
        with transaction.atomic():
            for contact in formset.deleted_objects:
                contact.delete()
            # Demotions first, so that the new primary never meets the old one.
            for contact in sorted(instances, key=lambda c: c.is_primary):
                services.contact_save(contact=contact)
        formset.save_m2m()


# --- Contacts and links ----------------------------------------------------------------------


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    form = ContactAdminForm
    list_display = ["email", "name", "role", "company", "is_primary", "created_at"]
    list_filter = ["is_primary"]
    search_fields = ["email", "name", "company__name", "company__short_id"]
    list_select_related = ["company"]
    autocomplete_fields = ["company"]
    show_full_result_count = False

    def save_model(self, request, obj, form, change):
        services.contact_save(contact=obj)


@admin.register(ProductLink)
class ProductLinkAdmin(admin.ModelAdmin):
    list_display = ["external_org_id", "product", "company", "label", "external_user_id", "created_at"]
    list_filter = ["product"]
    search_fields = ["=external_org_id", "company__name", "label"]
    list_select_related = ["product", "company"]
    autocomplete_fields = ["company"]
    show_full_result_count = False


# --- Products and API keys -----------------------------------------------------------------------


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # keys are created on the API key page, which shows them once

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("companies.view_apikey")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "company_count", "created_at"]
    search_fields = ["code", "name"]
    readonly_fields = ["id", "created_at"]
    inlines = [ApiKeyInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(company_count=Count("links__company", distinct=True))

    @admin.display(description="Linked companies", ordering="company_count")
    def company_count(self, product: Product) -> int:
        return product.company_count


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["product", "name"]


class RevokedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here and shown once, on the page that follows the
    save (never in a message, which would sit in the session or a cookie).
    Only the SHA-256 is stored, and it is never displayed."""

    list_display = ["name", "prefix_display", "product", "created_at", "created_by", "last_used_at", "revoked_at"]
    list_filter = [RevokedFilter, "product"]
    search_fields = ["name", "prefix"]
    list_select_related = ["product", "created_by"]
    exclude = ["key_hash"]
    actions = ["revoke_selected"]
    show_full_result_count = False

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
            kwargs["fields"] = ["product", "name"]
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["product", "name"]
        return ["name", "product", "prefix_display", "created_at", "created_by", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["product", "prefix_display", "created_at", "created_by", "last_used_at", "revoked_at"]

    @admin.display(description="Key")
    def prefix_display(self, key: ApiKey) -> str:
        return f"{key.prefix}…"

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the row keeps who used which key when

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        created, raw_key = services.api_key_create(product=obj.product, name=obj.name, created_by=request.user)
        # The admin goes on with `obj` (log entry, redirect): make it the row
        # the service created.
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if k != "_state"})
        obj._state.adding = False
        obj._state.db = created._state.db
        request._new_api_key = raw_key

    def response_add(self, request, obj, post_url_continue=None):
        raw_key = getattr(request, "_new_api_key", None)
        if raw_key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API key created",
            "api_key": obj,
            "raw_key": raw_key,
        }
        response = TemplateResponse(request, "admin/companies/apikey/key_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(api_key=key)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s). They stop working at once.", messages.SUCCESS)



# Service credentials live in their own module (kept apart from the API keys above).
from . import admin_service_credentials  # noqa: E402,F401
