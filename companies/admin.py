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
from django.db.models import Count, Exists, OuterRef
from django.utils.safestring import mark_safe
from unfold.admin import ModelAdmin, TabularInline

from config.errors import ApplicationError

from . import admin_extensions, services
from .admin_secrets import SecretShownOnceMixin
from .models import Account, ApiKey, Company, CompanyStatus, Contact, Product, ProductLink
from .services.cleaning import clean_domain, clean_email

logger = logging.getLogger(__name__)


def format_money(minor_units: int | None, currency: str = "") -> str:
    """Minor units (cents) as currency units for people: 249900, "usd" ->
    "2,499.00 USD" (SPEC §9: never raw cents in the admin)."""
    if minor_units is None:
        return "—"
    return f"{minor_units / 100:,.2f} {currency.upper()}".strip()


class _MoneyMixin:
    @admin.display(description="MRR", ordering="mrr")
    def mrr_amount(self, account: Account) -> str:
        return format_money(account.mrr, account.currency)

    @admin.display(description="Lifetime value", ordering="lifetime_value")
    def lifetime_value_amount(self, account: Account) -> str:
        return format_money(account.lifetime_value, account.currency)


# --- Forms ---------------------------------------------------------------------------


def _form_error(error: ApplicationError) -> ValidationError:
    """A service's error as a form error: its field messages when it has
    some (the admin shows the service's own words), else its message."""
    messages_by_field = (error.details or {}).get("fields") or {}
    return ValidationError([message for messages in messages_by_field.values() for message in messages] or error.message)


def _customer_pool_choices() -> list[tuple[str, str]]:
    pools = sorted(set(Product.objects.values_list("customer_pool", flat=True)))
    return [("", "—"), *((pool, pool) for pool in pools)]


class CompanyAdminForm(forms.ModelForm):
    class Meta:
        model = Company
        fields = [
            "name", "customer_pool", "short_id", "domain", "created_at",
            "country", "industry", "size", "timezone", "locale",
        ]
        help_texts = {
            "short_id": "Leave empty to derive it from the name (acme-inc, acme-inc-2, …), unique in the pool.",
            "domain": "Any form is accepted (https://www.acme.com/path); it is stored as acme.com.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "short_id" in self.fields:  # absent for view-only staff
            self.fields["short_id"].required = False
        if "customer_pool" in self.fields:
            self.fields["customer_pool"] = forms.ChoiceField(
                choices=_customer_pool_choices(),
                required=False,
                help_text="The products of this pool share the company. Empty when there is only one pool.",
            )

    def clean_customer_pool(self):
        pool = self.cleaned_data.get("customer_pool") or ""
        if not pool:
            pools = [value for value, _ in _customer_pool_choices() if value]
            if len(pools) > 1:
                raise ValidationError("Choose the customer pool the company lives in.")
            pool = pools[0] if pools else ""
        return pool

    def clean_domain(self):
        try:
            return clean_domain(self.cleaned_data.get("domain"))
        except ApplicationError as exc:
            raise _form_error(exc) from exc

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
        try:
            return clean_email(self.cleaned_data.get("email"))
        except ApplicationError as exc:
            raise _form_error(exc) from exc

    def _get_validation_exclusions(self):
        # "One primary per company" is kept by contact_save, which demotes
        # the previous primary; validating the constraint here would refuse
        # every change of primary contact.
        exclusions = super()._get_validation_exclusions()
        exclusions.add("is_primary")
        return exclusions


class ContactInlineFormSet(forms.BaseInlineFormSet):
    """The inline lists every contact of the company, so the whole set is
    checked by the service rule the bulk API uses (contacts_set_errors)."""

    def clean(self):
        super().clean()
        members = []
        for index, form in enumerate(self.forms):
            if not hasattr(form, "cleaned_data") or not form.cleaned_data:
                continue
            if self.can_delete and self._should_delete_form(form):
                continue
            members.append(
                services.ContactSetMember(
                    index=index,
                    email=form.cleaned_data.get("email") or "",
                    is_primary=bool(form.cleaned_data.get("is_primary")),
                )
            )
        set_level = []
        for name, messages in services.contacts_set_errors(members=members).items():
            _, index, field = name.split(".")
            if field == "email":
                self.forms[int(index)].add_error("email", messages)
            else:
                set_level.extend(messages)
        if set_level:
            raise ValidationError(sorted(set(set_level)))


class ProductLinkInlineForm(forms.ModelForm):
    class Meta:
        model = ProductLink
        fields = ["product", "external_org_id", "external_user_id", "label"]

    def _company(self, cleaned: dict):
        return self.instance.company if self.instance.company_id else None  # the page's company

    def clean(self):
        cleaned = super().clean()
        product, company = cleaned.get("product"), self._company(cleaned)
        if product is not None and company is not None:
            try:
                services.link_pool_check(product=product, company=company)
            except ApplicationError as exc:
                raise _form_error(exc) from exc
        return cleaned


# --- Company ---------------------------------------------------------------------------


class ContactInline(TabularInline):
    tab = True  # a tab of the customer overview (unfold)
    model = Contact
    form = ContactAdminForm
    formset = ContactInlineFormSet
    fields = ["email", "name", "role", "is_primary", "avatar_url"]
    extra = 0
    show_change_link = True


class ProductLinkInline(TabularInline):
    tab = True
    model = ProductLink
    form = ProductLinkInlineForm
    fields = ["product", "external_org_id", "external_user_id", "label", "link_type", "confidence", "created_at"]
    readonly_fields = ["link_type", "confidence", "created_at"]
    extra = 0


class AccountInline(_MoneyMixin, TabularInline):
    """The company's account with each product it is linked to (made by the
    link): what differs per product."""

    tab = True
    model = Account
    fields = [
        "product", "status", "mrr_amount", "metadata", "billing_email", "billing_address", "tax_id",
        "lifetime_value_amount", "first_purchase_at", "last_activity_at", "updated_at",
    ]
    # Status, MRR and the purchase/activity fields are kept by the system (SPEC §3), not typed in.
    readonly_fields = [
        "product", "status", "mrr_amount", "lifetime_value_amount", "first_purchase_at", "last_activity_at", "updated_at",
    ]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # an account is made when the company is linked to the product


class AccountStatusFilter(admin.SimpleListFilter):
    title = "account status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return CompanyStatus.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(Exists(Account.objects.filter(company=OuterRef("pk"), status=self.value())))
        return queryset


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
class CompanyAdmin(ModelAdmin):
    form = CompanyAdminForm
    change_form_template = "admin/companies/company/change_form.html"
    list_display = ["name", "short_id", "status_display", "mrr_display", "product_codes", "domain", "created_at"]
    list_filter = [AccountStatusFilter, ProductFilter, "customer_pool", "size", "country", "industry"]
    # Exact for external ids (they are opaque), substring for the rest.
    search_fields = ["name", "domain", "short_id", "=links__external_org_id", "contacts__email"]
    search_help_text = "Name, domain, shortId, external org id (exact) or contact email."
    list_select_related = True
    show_full_result_count = False
    list_per_page = 50
    date_hierarchy = "created_at"
    readonly_fields = ["id", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "customer_pool", "short_id", "domain"]}),
        ("Profile", {"fields": ["country", "industry", "size", "timezone", "locale"]}),
        ("Details", {"fields": ["created_at", "updated_at", "id"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        prefetches = [column.prefetch for column in admin_extensions.COMPANY_LIST_COLUMNS if hasattr(column, "prefetch")]
        return super().get_queryset(request).prefetch_related("links__product", "accounts__product", *prefetches)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not self._can_change_company_fields(request):
            return [field for fieldset in self.fieldsets for field in fieldset[1]["fields"]]
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            readonly.append("customer_pool")  # its products and shortId live in it
        return readonly

    @admin.display(description="MRR per product")
    def mrr_display(self, company: Company) -> str:
        parts = [
            f"{account.product.code} {format_money(account.mrr, account.currency)}"
            for account in company.accounts.all()
            if account.mrr
        ]
        return ", ".join(parts) or "—"

    @admin.display(description="Status")
    def status_display(self, company: Company) -> str:
        """The lifecycle status per product (SPEC §3), one word when all agree."""
        statuses = {(account.product.code, account.get_status_display()) for account in company.accounts.all()}
        words = {word for _, word in statuses}
        if len(words) <= 1:
            return next(iter(words), "—")
        return ", ".join(f"{code} {word}" for code, word in sorted(statuses))

    def get_list_display(self, request):
        # Apps further down add columns (tier, health) through the registry.
        columns = list(super().get_list_display(request))
        for column in admin_extensions.COMPANY_LIST_COLUMNS:
            columns.insert(3, column)
        return columns

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

    def get_list_filter(self, request):
        return [*self.list_filter, *admin_extensions.COMPANY_LIST_FILTERS]

    def get_inlines(self, request, obj):
        return [ContactInline, ProductLinkInline, AccountInline, *admin_extensions.COMPANY_INLINES]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not actions and (self.actions is None or "_popup" in request.GET):
            return actions
        extra = [self.get_action(action) for action in admin_extensions.COMPANY_ACTIONS]
        for func, name, description in self._filter_actions_by_permissions(request, [a for a in extra if a]):
            # An action registered with a permission is offered (list and
            # page) only to those who have it (SPEC §9 roles).
            required = getattr(func, "required_permission", None)
            if required and not request.user.has_perm(required):
                continue
            actions[name] = (func, name, description)
        return actions

    # The tab of the overview each app's panels go to (by the app's name, so
    # companies imports none of them); a panel may set its own `tab`.
    PANEL_TABS = {
        "entitlements": "Access history",
        "metering": "Usage",
        "credits": "Credits",
        "billing": "Subscriptions & invoices",
        "insights": "Health",
        "desk": "Timeline",
        "notifications": "Notifications",
    }

    def _panel_tabs(self, request, company: Company) -> list[dict]:
        """The panels under the form, grouped into tabs (first tab open)."""
        tabs: dict[str, list[str]] = {}
        for panel, html in zip(
            [p for p in admin_extensions.COMPANY_PANELS if not getattr(p, "top", False)],
            self._panels(request, company),
        ):
            if not html.strip():
                continue
            title = getattr(panel, "tab", None) or self.PANEL_TABS.get(panel.__module__.split(".")[0], "More")
            tabs.setdefault(title, []).append(html)
        from django.utils.text import slugify

        # Stable slugs (?tab=timeline opens that tab: the timeline's pages link back to it).
        return [{"title": title, "slug": slugify(title) or f"panel-{index}", "panels": panels} for index, (title, panels) in enumerate(tabs.items())]

    def _panels(self, request, company: Company, *, top: bool = False) -> list[str]:
        rendered = []
        for panel in admin_extensions.COMPANY_PANELS:
            if getattr(panel, "top", False) != top:
                continue
            try:
                rendered.append(mark_safe(panel(request, company)))
            except Exception:
                # One broken panel must not take the customer page down.
                logger.exception("company panel failed", extra={"panel": getattr(panel, "__name__", str(panel))})
                rendered.append(mark_safe('<p class="errornote">This panel could not be shown.</p>'))
        return rendered

    def get_urls(self):
        from django.urls import path

        urls = [
            path(
                "<path:object_id>/do/<str:action_name>/",
                self.admin_site.admin_view(self.company_action_view),
                name="companies_company_action",
            ),
        ]
        return urls + super().get_urls()

    def company_action_view(self, request, object_id, action_name):
        """One company action (Apply tier…, Adjust usage…, Grant credits…)
        started from the company page for this one company: the action's own
        intermediate form with its required reason; back to the page after."""
        from django.core.exceptions import PermissionDenied
        from django.http import Http404
        from django.shortcuts import redirect
        from django.urls import reverse

        company = self.get_object(request, object_id)
        if company is None:
            raise Http404("No such company.")
        actions = self.get_actions(request)
        if action_name not in actions or action_name == "delete_selected":
            raise PermissionDenied("This action is not available to your role.")
        func = actions[action_name][0]
        change_url = reverse("admin:companies_company_change", args=[company.pk])
        response = func(self, request, Company.objects.filter(pk=company.pk))
        if response is None:
            return redirect(change_url)
        if hasattr(response, "context_data") and response.context_data is not None:
            response.context_data["back_url"] = change_url
            response.context_data["company_page"] = company
        return response

    def _page_actions(self, request, company: Company) -> list[dict]:
        from django.urls import reverse

        buttons = []
        if company.merged_into_id:
            # A merged duplicate (a tombstone) takes no more changes: act on the kept company.
            return buttons
        for name, (_func, _name, description) in self.get_actions(request).items():
            if name == "delete_selected":
                continue
            required = getattr(_func, "required_permission", None)
            if required and not request.user.has_perm(required):
                continue
            buttons.append(
                {
                    "name": name,
                    "title": str(description),
                    "url": reverse("admin:companies_company_action", args=[company.pk, name]),
                }
            )
        for link in admin_extensions.COMPANY_PAGE_LINKS:
            button = link(request, company)
            if button:
                buttons.append(button)
        return buttons

    def _summary(self, request, company: Company) -> list[dict]:
        """The header of the customer overview: facts every app contributes
        (status and MRR here; tier, subscription, wallet from their apps)."""
        accounts = list(company.accounts.select_related("product"))
        facts = [
            {
                "label": "Status",
                "value": ", ".join(f"{a.product.code}: {a.get_status_display()}" for a in accounts) or "—",
            },
            {
                "label": "MRR",
                "value": ", ".join(format_money(a.mrr, a.currency) for a in accounts if a.mrr) or "—",
            },
        ]
        for fact in admin_extensions.COMPANY_SUMMARY:
            try:
                facts.extend(fact(request, company) or [])
            except Exception:
                logger.exception("company summary failed", extra={"fact": getattr(fact, "__name__", str(fact))})
        return facts

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        if object_id:
            company = self.get_object(request, object_id)
            if company is not None:
                extra_context["company_panel_tabs"] = tabs = self._panel_tabs(request, company)
                wanted = request.GET.get("tab")
                extra_context["company_panel_tab_open"] = next(
                    (tab["slug"] for tab in tabs if tab["slug"] == wanted), tabs[0]["slug"] if tabs else ""
                )
                extra_context["company_panels_top"] = self._panels(request, company, top=True)
                extra_context["company_summary"] = self._summary(request, company)
                extra_context["company_actions"] = self._page_actions(request, company)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
        else:
            services.company_insert(company=obj)

    def save_formset(self, request, form, formset, change):
        if formset.model is ProductLink:
            return self._save_links(formset)
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


    def _save_links(self, formset):
        """New links go through the service (pool rule, the account)."""
        instances = formset.save(commit=False)
        with transaction.atomic():
            for link in formset.deleted_objects:
                link.delete()
            for link in instances:
                if link._state.adding:
                    services.link_insert(
                        product_id=link.product_id,
                        company=link.company,
                        external_org_id=link.external_org_id,
                        external_user_id=link.external_user_id,
                        label=link.label,
                    )
                else:
                    link.save()
                    services.account_ensure(company=link.company, product_id=link.product_id)


# --- Contacts and links ----------------------------------------------------------------------


@admin.register(Contact)
class ContactAdmin(ModelAdmin):
    form = ContactAdminForm
    list_display = ["email", "name", "role", "company", "is_primary", "created_at"]
    list_filter = ["is_primary"]
    search_fields = ["email", "name", "company__name", "company__short_id"]
    list_select_related = ["company"]
    autocomplete_fields = ["company"]
    show_full_result_count = False

    def save_model(self, request, obj, form, change):
        services.contact_save(contact=obj)


class ProductLinkAdminForm(ProductLinkInlineForm):
    class Meta(ProductLinkInlineForm.Meta):
        fields = ["company", *ProductLinkInlineForm.Meta.fields, "metadata"]

    def _company(self, cleaned: dict):
        return cleaned.get("company")


@admin.register(ProductLink)
class ProductLinkAdmin(ModelAdmin):
    form = ProductLinkAdminForm
    list_display = [
        "external_org_id", "product", "company", "label", "link_type", "confidence", "external_user_id", "created_at"
    ]
    list_filter = ["product", "link_type"]
    readonly_fields = ["link_type", "confidence", "created_at", "updated_at"]
    search_fields = ["=external_org_id", "company__name", "label"]
    list_select_related = ["product", "company"]
    autocomplete_fields = ["company"]
    show_full_result_count = False

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
            services.account_ensure(company=obj.company, product_id=obj.product_id)
            return
        link = services.link_insert(
            product_id=obj.product_id,
            company=obj.company,
            external_org_id=obj.external_org_id,
            external_user_id=obj.external_user_id,
            label=obj.label,
            metadata=obj.metadata,
        )
        obj.pk, obj._state.adding, obj._state.db = link.pk, False, link._state.db


@admin.register(Account)
class AccountAdmin(_MoneyMixin, ModelAdmin):
    """Accounts are made by links; staff edit what is per product here or
    on the company page."""

    list_display = ["company", "product", "status", "mrr_amount", "lifetime_value_amount", "last_activity_at", "updated_at"]
    list_filter = ["product", "status"]
    search_fields = ["company__name", "company__short_id", "billing_email", "tax_id"]
    list_select_related = ["company", "product"]
    readonly_fields = [
        "company", "product", "status", "mrr_amount", "lifetime_value_amount", "first_purchase_at", "last_activity_at",
        "created_at", "updated_at",
    ]
    fields = [
        "company", "product", "status", "mrr_amount", "metadata", "billing_email", "billing_address", "tax_id",
        "lifetime_value_amount", "first_purchase_at", "last_activity_at", "created_at", "updated_at",
    ]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False


# --- Products and API keys -----------------------------------------------------------------------


class ApiKeyInline(TabularInline):
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


class ProductAdminForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = ["code", "name", "customer_pool"]
        help_texts = {
            "customer_pool": (
                "Products of one pool share their customers: smart link and onboard match only companies "
                "of the pool. Empty: the product's code (a pool of its own). The product's companies move "
                "with it, unless other products share them."
            )
        }

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        self.instance.code = cleaned.get("code") or self.instance.code
        try:
            cleaned["customer_pool"] = services.product_customer_pool_check(
                product=self.instance, customer_pool=cleaned.get("customer_pool") or ""
            )
        except ApplicationError as exc:
            self.add_error("customer_pool", _form_error(exc))
        return cleaned


@admin.register(Product)
class ProductAdmin(ModelAdmin):
    """Products and their customer pool (the pool: Billing admin, SPEC §2)."""

    form = ProductAdminForm
    list_display = ["code", "name", "customer_pool", "company_count", "created_at"]
    list_filter = ["customer_pool"]
    search_fields = ["code", "name", "customer_pool"]
    readonly_fields = ["id", "created_at"]
    inlines = [ApiKeyInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(company_count=Count("links__company", distinct=True))

    def save_model(self, request, obj, form, change):
        if not change:
            obj.save()
            return
        customer_pool = obj.customer_pool
        obj.save(update_fields=["code", "name"])
        services.product_customer_pool_set(product=obj, customer_pool=customer_pool)

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
class ApiKeyAdmin(SecretShownOnceMixin, ModelAdmin):
    """Keys are created here and shown once, on the page that follows the
    save (never in a message, which would sit in the session or a cookie).
    Only the SHA-256 is stored, and it is never displayed."""

    list_display = ["name", "prefix_display", "product", "created_at", "created_by", "last_used_at", "revoked_at"]
    list_filter = [RevokedFilter, "product"]
    search_fields = ["name", "prefix"]
    list_select_related = ["product", "created_by"]
    exclude = ["key_hash"]
    actions = ["revoke_selected"]
    secret_template = "admin/companies/apikey/key_created.html"
    secret_title = "API key created"
    secret_context_names = ("api_key", "raw_key")
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

    def create_with_secret(self, request, obj):
        return services.api_key_create(product=obj.product, name=obj.name, created_by=request.user)

    def save_change(self, request, obj) -> None:
        obj.save(update_fields=["name"])

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(api_key=key)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s). They stop working at once.", messages.SUCCESS)



# Service credentials live in their own module (kept apart from the API keys above).
from . import admin_service_credentials  # noqa: E402,F401
