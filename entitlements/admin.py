"""The support staff's screens for features, tiers and feature access (SPEC §9).

- Feature and Tier (with tier features inline): only users with the catalog
  permissions (Billing admin) can edit; Support sees them read-only.
- Feature access: editable inline on the company page and as its own list.
  Every change needs a reason; saves go through `feature_access_set`, the
  service behind the API, so the rules and the history are the same.
- "Apply tier…" on companies: an intermediate form (tier, overrides, reason)
  that calls `tier_apply`.
- The company page shows the latest feature access changes with a link to
  the company's full access history."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max, Prefetch, Q, Subquery
from django.http import Http404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline

from companies import admin_extensions
from companies.models import Company, Product
from companies.selectors import company_ids_not_visible
from config.errors import ApplicationError

from companies.actors import Actor
from .models import AccessSource, Feature, FeatureAccess, FeatureKind, Tier, TierFeature
from .services import (
    OVERRIDE_KEYS,
    SERVICE_FIELD_FOR_API_NAME,
    feature_access_set,
    feature_access_validate_changes,
    feature_access_window_validate,
    tier_apply,
    tier_apply_kept_preview,
    tier_overrides_validate,
)

ACCESS_FIELDS = ["is_enabled", "quantity_limit", "included_quantity", "config", "source", "valid_until"]


def _application_error_to_form(form: forms.Form, error: ApplicationError, *, default_field=None) -> None:
    """Put a service's BadRequest/NotFound on the form, field by field."""
    fields = (error.details or {}).get("fields") or {}
    if not fields:
        form.add_error(default_field, error.message)
        return
    for api_name, messages_ in fields.items():
        name = SERVICE_FIELD_FOR_API_NAME.get(api_name, api_name)
        target = name if name in form.fields else default_field
        for message in messages_:
            form.add_error(target, message if target == name else f"{api_name}: {message}")


# --- Feature access forms --------------------------------------------------------------------------


class FeatureAccessForm(forms.ModelForm):
    """Edits one access row. Any change needs a reason (kept in the history)."""

    quantity_limit = forms.IntegerField(
        required=False, min_value=0, help_text="Empty = unlimited.", widget=forms.NumberInput(attrs={"style": "width: 6em"})
    )
    included_quantity = forms.IntegerField(min_value=0, initial=0, widget=forms.NumberInput(attrs={"style": "width: 6em"}))
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.TextInput(attrs={"size": 22, "placeholder": "Why? (required for a change)"}),
    )
    # One line instead of the admin's stacked date + time widgets: keeps an
    # inline row, and with it the reason field, on the screen.
    valid_until = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"size": 14, "placeholder": "YYYY-MM-DD HH:MM"}, format="%Y-%m-%d %H:%M"),
        help_text="UTC; empty = no end.",
    )

    class Meta:
        model = FeatureAccess
        fields = ["feature", *ACCESS_FIELDS]
        widgets = {
            "config": forms.Textarea(attrs={"rows": 1, "cols": 16}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # Staff edit what is in force (the override over the tier layer);
            # a change is written to the override (`feature_access_set`).
            effective = self.instance.effective_at(timezone.now())
            self.initial.update(
                {
                    "is_enabled": effective.granted and effective.is_enabled,
                    "quantity_limit": effective.quantity_limit,
                    "included_quantity": effective.included_quantity,
                    "config": effective.config,
                }
            )
        self._original_config = dict(self.initial.get("config") or {}) if self.instance.pk else {}
        if self.instance.pk and "feature" in self.fields:
            self.fields["feature"].disabled = True

    def clean_config(self):
        config = self.cleaned_data.get("config")
        if config in (None, ""):
            return {}
        if not isinstance(config, dict):
            raise forms.ValidationError("Must be a JSON object, e.g. {\"maxSeats\": 50}.")
        return config

    def access_changes(self) -> dict[str, Any]:
        """The service's partial update: changed fields only (all of them for
        a new row); the config as a merge patch that yields the edited object."""
        is_new = self.instance._state.adding
        names = ACCESS_FIELDS if is_new else [name for name in ACCESS_FIELDS if name in self.changed_data]
        changes = {name: self.cleaned_data.get(name) for name in names}
        if "included_quantity" in changes and changes["included_quantity"] is None:
            changes["included_quantity"] = 0
        if "config" in changes:
            edited = changes["config"] or {}
            patch = {key: None for key in self._original_config if key not in edited}
            patch.update({key: value for key, value in edited.items() if self._original_config.get(key) != value})
            changes["config"] = patch
            # Values that are themselves null cannot be stored through a merge patch.
            if any(value is None for value in edited.values()):
                self.add_error("config", "Remove a key instead of setting it to null.")
        return changes

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        meaningful = [name for name in self.changed_data if name != "reason"]
        if (meaningful or self.instance._state.adding) and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "Give a reason for this change; it is kept in the history.")
        try:
            feature_access_window_validate(valid_from=self.instance.valid_from, valid_until=cleaned.get("valid_until"))
            feature_access_validate_changes(changes=self.access_changes())
        except ApplicationError as error:
            _application_error_to_form(self, error)
        return cleaned

    def has_changed(self):
        # A reason typed into an untouched row is not a change.
        return any(name != "reason" for name in self.changed_data)


def _actor(request) -> Actor:
    return Actor.for_user(request.user)


class FeatureAccessInlineFormSet(forms.BaseInlineFormSet):
    """Saves through `feature_access_set` (same rules and history as the API)."""

    request = None  # set by FeatureAccessInline.get_formset

    def save_new(self, form, commit=True):
        return feature_access_set(
            company=self.instance,
            feature=form.cleaned_data["feature"],
            changes=form.access_changes(),
            actor=_actor(self.request),
            reason=form.cleaned_data["reason"],
        )

    def save_existing(self, form, obj, commit=True):
        return feature_access_set(
            company=self.instance,
            feature=obj.feature,
            changes=form.access_changes(),
            actor=_actor(self.request),
            reason=form.cleaned_data["reason"],
        )

    def delete_existing(self, obj, commit=True):
        raise PermissionDenied("Feature access is disabled, not deleted.")


class FeatureAccessInline(TabularInline):
    model = FeatureAccess
    form = FeatureAccessForm
    formset = FeatureAccessInlineFormSet
    fields = ["feature", *ACCESS_FIELDS, "reason", "tier", "state", "history_link"]
    readonly_fields = ["tier", "state", "history_link"]
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name = "feature access"
    verbose_name_plural = "feature access (every change needs a reason)"

    def get_queryset(self, request):
        # `company` too: each row's label (FeatureAccess.__str__) names it.
        return super().get_queryset(request).select_related("company", "feature", "feature__product", "tier")

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.request = request
        return formset

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "feature" and formfield is not None:
            # No add/change/view icons under the feature: features are edited
            # in the catalog, not from a customer's page.
            widget = formfield.widget
            widget.can_add_related = widget.can_change_related = widget.can_view_related = False
            widget.can_delete_related = False
            widget.attrs["style"] = "width: 12em"
        if db_field.name == "source" and formfield is not None:
            formfield.widget.attrs["style"] = "width: 9em"
        return formfield

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "feature":
            company_id = getattr(request.resolver_match, "kwargs", {}).get("object_id")
            features = Feature.objects.select_related("product")
            if company_id:
                try:
                    features = features.filter(product__links__company_id=company_id).distinct()
                except Exception:  # noqa: BLE001 - a malformed id shows every feature
                    pass
            kwargs["queryset"] = features.order_by("product__code", "code")
            formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
            # Read the choices once for the page: every inline row (and the
            # empty form) would otherwise run the same query again.
            formfield.choices = list(formfield.choices)
            return formfield
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="state")
    def state(self, access: FeatureAccess) -> str:
        if not access.pk:
            return "—"
        if not access.is_active_at(timezone.now()):
            return "expired" if access.is_expired else "off"
        return "on"

    @admin.display(description="history")
    def history_link(self, access: FeatureAccess) -> str:
        if not access.pk:
            return "—"
        url = reverse("admin:entitlements_featureaccess_history", args=[access.pk])
        return format_html('<a href="{}">history</a>', url)


# --- Feature access list ---------------------------------------------------------------------------


class ProductFilter(admin.SimpleListFilter):
    title = "product"
    parameter_name = "product"

    def lookups(self, request, model_admin):
        return [(product.code, product.name) for product in Product.objects.only("code", "name")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(feature__product__code=self.value())
        return queryset


class ExpiredFilter(admin.SimpleListFilter):
    title = "expired"
    parameter_name = "expired"

    def lookups(self, request, model_admin):
        return [("yes", "Expired"), ("no", "Not expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "yes":
            return queryset.filter(valid_until__lte=now)
        if self.value() == "no":
            return queryset.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        return queryset


@admin.register(FeatureAccess)
class FeatureAccessAdmin(SimpleHistoryAdmin, ModelAdmin):
    form = FeatureAccessForm
    list_display = [
        "company",
        "feature",
        "product",
        "source",
        "is_enabled",
        "quantity_limit",
        "included_quantity",
        "valid_until",
        "expired",
        "tier",
        "updated_at",
    ]
    list_filter = [ProductFilter, "feature", "source", "is_enabled", ExpiredFilter]
    search_fields = ["company__name", "company__short_id", "=company__links__external_org_id", "feature__code"]
    list_select_related = ["company", "feature", "feature__product", "tier"]
    autocomplete_fields = ["company"]
    readonly_fields = ["tier", "valid_from", "created_at", "updated_at"]
    history_list_display = ["actor"]
    show_full_result_count = False

    def get_fields(self, request, obj=None):
        company = [] if obj else ["company"]
        return [*company, "feature", *ACCESS_FIELDS, "reason", "tier", "valid_from", "created_at", "updated_at"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["fields"] = ["company", "feature", *ACCESS_FIELDS, "reason"]
        else:
            kwargs["fields"] = ["feature", *ACCESS_FIELDS, "reason"]
        return super().get_form(request, obj, **kwargs)

    @admin.display(description="product", ordering="feature__product__code")
    def product(self, access: FeatureAccess) -> str:
        return access.feature.product.code

    @admin.display(description="expired", boolean=True)
    def expired(self, access: FeatureAccess) -> bool:
        return access.is_expired

    def has_delete_permission(self, request, obj=None):
        return False  # disable instead: the row keeps its history

    def revert_disabled(self, request, obj=None):
        return True  # a revert would bypass the reason; edit the row instead

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def save_model(self, request, obj, form, change):
        saved = feature_access_set(
            company=obj.company,
            feature=obj.feature,
            changes=form.access_changes(),
            actor=_actor(request),
            reason=form.cleaned_data["reason"],
        )
        # The admin goes on with `obj` (log entry, redirect): make it the saved row.
        obj.pk = saved.pk
        obj._state.adding = False

    def get_urls(self):
        urls = super().get_urls()
        extra = [
            path(
                "company/<uuid:company_id>/history/",
                self.admin_site.admin_view(self.company_history_view),
                name="entitlements_featureaccess_company_history",
            )
        ]
        return extra + urls

    def company_history_view(self, request, company_id):
        """Every feature access change of one company, newest first."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        company = Company.objects.filter(pk=company_id).first()
        if company is None:
            raise Http404
        records = company_access_history(company_id=company.pk, limit=200)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Feature access history: {company.name}",
            "company": company,
            "records": records,
        }
        return TemplateResponse(request, "admin/entitlements/company_access_history.html", context)


def company_access_history(*, company_id, limit: int = 50) -> list[dict[str, Any]]:
    """The latest historical rows of a company's feature access, each with
    its changes against the previous version of the same row."""
    History = FeatureAccess.history.model
    records = list(
        History.objects.filter(company_id=company_id)
        .select_related("history_user", "feature")
        .order_by("-history_date", "-history_id")[:limit]
    )
    # Previous version of each record: the next older one of the same row in
    # this page; for the oldest record shown of each row, its predecessor,
    # found for all rows at once (two queries, whatever the number of rows).
    previous_of: dict[int, Any] = {}
    newest_first_by_row: dict[Any, list] = {}
    for record in records:
        newest_first_by_row.setdefault(record.id, []).append(record)
    oldest_shown = []
    for versions in newest_first_by_row.values():
        for newer, older in zip(versions, versions[1:]):
            previous_of[newer.history_id] = older
        oldest_shown.append(versions[-1])
    if oldest_shown:
        before_oldest = Q()
        for oldest in oldest_shown:
            before_oldest |= Q(id=oldest.id, history_id__lt=oldest.history_id)
        # One query whether or not any predecessor exists (the newest older
        # version of each row, as a subquery), so the count never depends on the data.
        newest_older = (
            History.objects.filter(before_oldest).values("id").annotate(previous=Max("history_id")).values("previous")
        )
        predecessors = {row.id: row for row in History.objects.filter(history_id__in=Subquery(newest_older))}
        for oldest in oldest_shown:
            previous_of[oldest.history_id] = predecessors.get(oldest.id)
    entries = []
    for record in records:
        previous = previous_of.get(record.history_id)
        if previous is None:
            changes = [
                {"field": name, "old": None, "new": getattr(record, name)}
                for name in ("is_enabled", "quantity_limit", "included_quantity", "config", "source", "valid_until")
            ]
        else:
            delta = record.diff_against(previous, excluded_fields=["created_at"])
            changes = [{"field": change.field, "old": change.old, "new": change.new} for change in delta.changes]
        entries.append(
            {
                "record": record,
                "feature": record.feature.code if record.feature_id else "?",
                "kind": record.get_history_type_display(),
                "actor": record.actor or (f"user:{record.history_user}" if record.history_user else ""),
                "reason": record.history_change_reason or "",
                "changes": changes,
                "url": reverse("admin:entitlements_featureaccess_history", args=[record.id]),
            }
        )
    _changes_in_words(entries)
    return entries


_FIELD_WORDS = {
    "is_enabled": "enabled",
    "quantity_limit": "limit",
    "included_quantity": "included",
    "valid_until": "valid until",
    "tier": "tier",
}


def _changes_in_words(entries: list[dict[str, Any]]) -> None:
    """History in words (SPEC §9): tier names instead of tier ids, field
    names as people say them. One query for every tier mentioned."""
    tier_ids = {
        value
        for entry in entries
        for change in entry["changes"]
        if change["field"] in ("tier", "tier_id")
        for value in (change["old"], change["new"])
        if value
    }
    names = {
        str(tier.pk): f"{tier.product.code} · {tier.name}"
        for tier in Tier.objects.filter(pk__in=[str(v) for v in tier_ids]).select_related("product")
    } if tier_ids else {}
    for entry in entries:
        for change in entry["changes"]:
            if change["field"] in ("tier", "tier_id"):
                change["old"] = names.get(str(change["old"]), change["old"]) if change["old"] else None
                change["new"] = names.get(str(change["new"]), change["new"]) if change["new"] else None
                change["field"] = "tier"
            change["field"] = _FIELD_WORDS.get(change["field"], change["field"])


def feature_access_panel(request, company: Company) -> str:
    """Company page panel: the latest feature access changes."""
    if not request.user.has_perm("entitlements.view_featureaccess"):
        return ""
    return render_to_string(
        "admin/entitlements/company_access_panel.html",
        {
            "entries": company_access_history(company_id=company.pk, limit=10),
            "full_url": reverse("admin:entitlements_featureaccess_company_history", args=[company.pk]),
        },
        request=request,
    )


# --- Apply tier action -----------------------------------------------------------------------------


class TierChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, tier: Tier) -> str:
        return f"{tier.product.code} · {tier.name} ({tier.code})"


class OptionalJSONField(forms.JSONField):
    """An optional JSON box that starts empty, not pre-filled with `null`."""

    def prepare_value(self, value):
        if value is None:
            return ""
        return super().prepare_value(value)


class ApplyTierForm(forms.Form):
    tier = TierChoiceField(queryset=Tier.objects.none())
    overrides = OptionalJSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text='Optional, on top of the tier: {"ai_credit": {"quantityLimit": 5000}}',
    )
    reason = forms.CharField(max_length=2000, widget=forms.TextInput(attrs={"size": 60}))

    # The API's names of what an apply-time override may set (the same JSON as POST /tiers/{code}/apply).
    OVERRIDE_FIELDS = {api: name for api, name in SERVICE_FIELD_FOR_API_NAME.items() if name in OVERRIDE_KEYS}

    def __init__(self, *args, companies, **kwargs):
        super().__init__(*args, **kwargs)
        self.companies = list(companies)
        self.fields["tier"].queryset = Tier.objects.filter(is_active=True).select_related("product").order_by(
            "product__code", "display_order", "code"
        )

    def clean_overrides(self):
        overrides = self.cleaned_data.get("overrides") or {}
        if not isinstance(overrides, dict) or not all(isinstance(value, dict) for value in overrides.values()):
            raise forms.ValidationError('Must be a JSON object of feature codes to objects, e.g. {"sso": {"isEnabled": true}}.')
        converted = {}
        for code, override in overrides.items():
            unknown = sorted(set(override) - set(self.OVERRIDE_FIELDS))
            if unknown:
                raise forms.ValidationError(f"{code}.{unknown[0]}: unknown field (use {', '.join(self.OVERRIDE_FIELDS)}).")
            converted[code] = {self.OVERRIDE_FIELDS[key]: value for key, value in override.items()}
        return converted

    def clean(self):
        cleaned = super().clean()
        tier = cleaned.get("tier")
        if tier is None or "overrides" not in cleaned:
            return cleaned
        not_visible = company_ids_not_visible(product_id=tier.product_id, company_ids=[c.pk for c in self.companies])
        unlinked = [c.name for c in self.companies if c.pk in not_visible]
        if unlinked:
            self.add_error("tier", f"Not linked to {tier.product.name}: {', '.join(unlinked)}.")
        try:
            tier_overrides_validate(tier=tier, overrides=cleaned["overrides"])
        except ApplicationError as error:
            fields = (error.details or {}).get("fields") or {}
            detail = "; ".join(f"{k}: {v[0]}" for k, v in fields.items()) or error.message
            self.add_error("overrides", detail)
        return cleaned


def _kept_words(entry: dict) -> str:
    until = f" until {entry['validUntil']:%d %b %Y %H:%M} UTC" if entry.get("validUntil") else ""
    return f"{entry['featureCode']} ({entry['source']} override{until})"


# Tier changes are Billing admin's (SPEC §9); Support edits overrides only.
APPLY_TIER_PERMISSION = "entitlements.apply_tier"


@admin.action(description="Apply tier…")
def entitlements_apply_tier(modeladmin, request, queryset):
    """Intermediate page (like delete_selected): choose a tier, optional
    overrides and a reason, then `tier_apply` for every selected company."""
    if not request.user.has_perm(APPLY_TIER_PERMISSION):
        modeladmin.message_user(request, "You may not change a company's tier (Billing admin).", messages.ERROR)
        return None
    companies = list(queryset.order_by("name"))
    form = ApplyTierForm(request.POST if "apply" in request.POST else None, companies=companies)
    if form.is_bound and form.is_valid():
        tier = form.cleaned_data["tier"]
        try:
            with transaction.atomic():
                results = [
                    (
                        company,
                        tier_apply(
                            company=company,
                            tier=tier,
                            overrides=form.cleaned_data["overrides"] or None,
                            actor=_actor(request),
                            reason=form.cleaned_data["reason"],
                        ),
                    )
                    for company in companies
                ]
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            for company, result in results:
                summary = ", ".join(result.features_applied) or "nothing"
                removed = f"; disabled {', '.join(result.features_removed)}" if result.features_removed else ""
                kept = (
                    "; kept because of an override: " + ", ".join(_kept_words(entry) for entry in result.features_kept)
                    if result.features_kept
                    else ""
                )
                unchanged = " (already applied, nothing changed)" if not result.changed else ""
                modeladmin.message_user(
                    request,
                    f"{company.name}: tier {tier.code} applied to {summary}{removed}{kept}{unchanged}.",
                    messages.SUCCESS,
                )
            return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Apply a tier",
        "opts": modeladmin.model._meta,
        "companies": companies,
        "form": form,
        "action_name": "entitlements_apply_tier",
        # featuresKept before acting: the overrides in force stay over any tier.
        "kept_preview": [
            (company, [_kept_words(entry) for entry in tier_apply_kept_preview(company_id=company.pk)])
            for company in companies[:20]
        ],
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/entitlements/apply_tier.html", context)


class CompanyTierFilter(admin.SimpleListFilter):
    """Companies by the tier their subscription access comes from (SPEC §9)."""

    title = "tier"
    parameter_name = "tier"

    def lookups(self, request, model_admin):
        tiers = Tier.objects.select_related("product").order_by("product__code", "display_order")
        return [(str(tier.pk), f"{tier.product.code} · {tier.name}") for tier in tiers]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(
            feature_access__tier_id=self.value(), feature_access__source="subscription", feature_access__is_enabled=True
        ).distinct()


admin_extensions.register_company_list_filter(CompanyTierFilter)
admin_extensions.register_company_inline(FeatureAccessInline)
admin_extensions.register_company_action(entitlements_apply_tier, permission=APPLY_TIER_PERMISSION)
admin_extensions.register_company_panel(feature_access_panel)


# --- Catalog: features and tiers ----------------------------------------------------------------


@admin.register(Feature)
class FeatureAdmin(ModelAdmin):
    list_display = ["code", "name", "product", "kind", "unit", "reset_period", "stripe_meter_event_name"]
    list_filter = ["product", "kind"]
    search_fields = ["code", "name"]
    list_select_related = ["product"]
    readonly_fields = ["created_at", "updated_at"]


class TierFeatureForm(forms.ModelForm):
    class Meta:
        model = TierFeature
        fields = ["feature", "is_enabled", "included_quantity", "quantity_limit", "config", "stripe_price_id"]

    def clean_config(self):
        config = self.cleaned_data.get("config")
        if config in (None, ""):
            return {}
        if not isinstance(config, dict):
            raise forms.ValidationError("Must be a JSON object.")
        return config


class TierFeatureInlineFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        product_id = self.instance.product_id
        for form in self.forms:
            feature = getattr(form, "cleaned_data", {}).get("feature")
            if feature is not None and product_id and feature.product_id != product_id:
                form.add_error("feature", "This feature belongs to another product.")


class TierFeatureInline(TabularInline):
    model = TierFeature
    form = TierFeatureForm
    formset = TierFeatureInlineFormSet
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("feature")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "feature":
            tier_id = getattr(request.resolver_match, "kwargs", {}).get("object_id")
            features = Feature.objects.select_related("product").order_by("product__code", "code")
            product_id = Tier.objects.filter(pk=tier_id).values_list("product_id", flat=True).first() if tier_id else None
            kwargs["queryset"] = features.filter(product_id=product_id) if product_id else features
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Tier)
class TierAdmin(ModelAdmin):
    list_display = ["code", "name", "product", "is_active", "is_default", "display_order", "base_fee"]
    list_filter = ["product", "is_active"]
    search_fields = ["code", "name"]
    list_select_related = ["product"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [TierFeatureInline]
    fieldsets = [
        (None, {"fields": ["product", "code", "name", "description", "is_active", "is_default", "display_order"]}),
        (
            "Base fee",
            {"fields": ["base_fee_stripe_price_id", "base_fee_unit_amount", "base_fee_currency", "base_fee_interval",
                        "credits_per_cycle"]},
        ),
        ("Dates", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    @admin.display(description="base fee")
    def base_fee(self, tier: Tier) -> str:
        if tier.base_fee_unit_amount is None:
            return "—"
        return f"{tier.base_fee_unit_amount / 100:,.2f} {tier.base_fee_currency.upper()}/{tier.base_fee_interval}"



# --- The customer overview: tier column, tier fact, Override access… -------------------------


def _company_tier_names(company: Company) -> list[str]:
    rows = (
        FeatureAccess.objects.filter(company=company, tier__isnull=False)
        .values_list("tier__product__code", "tier__name")
        .distinct()
    )
    return sorted(f"{product} · {name}" for product, name in rows)


@admin.display(description="Tier")
def company_tier_column(company: Company) -> str:
    rows = getattr(company, "_tier_access_rows", None)
    if rows is None:
        return ", ".join(_company_tier_names(company)) or "—"
    return ", ".join(sorted({f"{row.tier.product.code} · {row.tier.name}" for row in rows})) or "—"


# The changelist prefetches this for every row (no query per company).
company_tier_column.prefetch = Prefetch(
    "feature_access",
    queryset=FeatureAccess.objects.filter(tier__isnull=False).select_related("tier__product"),
    to_attr="_tier_access_rows",
)


def company_tier_summary(request, company: Company) -> list[dict]:
    return [{"label": "Tier", "value": ", ".join(_company_tier_names(company)) or "none"}]


class FeatureChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, feature: Feature) -> str:
        return f"{feature.product.code} · {feature.name} ({feature.code})"


class OverrideAccessForm(forms.Form):
    """One override on top of the tier layer (SPEC §4): the fields given are
    set, the others keep coming from the tier."""

    feature = FeatureChoiceField(queryset=Feature.objects.none())
    is_enabled = forms.TypedChoiceField(
        label="Enabled", required=False, empty_value=None,
        choices=[("", "as the tier says"), ("true", "on"), ("false", "off")],
        coerce=lambda value: value == "true",
    )
    quantity_limit = forms.IntegerField(
        label="Limit", required=False, min_value=0, help_text="Empty: the tier's limit."
    )
    source = forms.ChoiceField(
        choices=[(value, label) for value, label in AccessSource.choices if value != AccessSource.SUBSCRIPTION],
        initial=AccessSource.MANUAL,
    )
    valid_until = forms.DateTimeField(
        required=False, help_text="UTC, YYYY-MM-DD HH:MM. Empty: until removed. After it, the tier's values show again.",
        widget=forms.DateTimeInput(attrs={"placeholder": "YYYY-MM-DD HH:MM"}, format="%Y-%m-%d %H:%M"),
    )
    reason = forms.CharField(max_length=2000, widget=forms.TextInput(attrs={"size": 60}))
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, company: Company, **kwargs):
        super().__init__(*args, **kwargs)
        self.company = company
        product_ids = company.links.values("product_id")
        self.fields["feature"].queryset = (
            Feature.objects.filter(product_id__in=product_ids).select_related("product").order_by("product__code", "code")
        )

    def changes(self) -> dict[str, Any]:
        data = self.cleaned_data
        changes: dict[str, Any] = {"source": data["source"], "valid_until": data.get("valid_until")}
        if data.get("is_enabled") is not None:
            changes["is_enabled"] = data["is_enabled"]
        if data.get("quantity_limit") is not None:
            changes["quantity_limit"] = data["quantity_limit"]
        return changes

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            feature_access_validate_changes(changes=self.changes())
            feature_access_window_validate(valid_from=None, valid_until=cleaned.get("valid_until"))
        except ApplicationError as error:
            _application_error_to_form(self, error)
        return cleaned


def _limit_words(value) -> str:
    return "unlimited" if value is None else f"{value:,}"


def _override_preview(company: Company, feature: Feature, changes: dict[str, Any]) -> list[str]:
    """What the override changes, in words: what is in force now → after."""
    now = timezone.now()
    row = FeatureAccess.objects.filter(company=company, feature=feature).first()
    effective = row.effective_at(now) if row is not None else None
    enabled_now = bool(effective and effective.granted and effective.is_enabled)
    limit_now = effective.quantity_limit if effective is not None else None
    layer_now = (
        f"{row.source} override" if row is not None and row.has_override and row.source != AccessSource.SUBSCRIPTION
        else "the tier" if row is not None and row.tier_granted else "nothing (not granted)"
    )
    until = f" until {changes['valid_until']:%d %b %Y %H:%M} UTC" if changes.get("valid_until") else " until removed"
    lines = [f"{feature.name}: now from {layer_now} → a {changes['source']} override{until}."]
    if "is_enabled" in changes and changes["is_enabled"] != enabled_now:
        lines.append(f"Enabled: {'on' if enabled_now else 'off'} → {'on' if changes['is_enabled'] else 'off'}.")
    if "quantity_limit" in changes and feature.kind == FeatureKind.METERED:
        lines.append(f"Limit: {_limit_words(limit_now)} → {_limit_words(changes['quantity_limit'])}.")
    if changes.get("valid_until"):
        lines.append("When it ends, the tier's values show again (the feature is not switched off).")
    return lines


@admin.action(description="Override access…")
def entitlements_override_access(modeladmin, request, queryset):
    """Set one feature's override for one company, with a reason, after a
    preview of what changes (`feature_access_set`, as the API's PATCH)."""
    if not request.user.has_perm("entitlements.change_featureaccess"):
        modeladmin.message_user(request, "You may not change feature access.", messages.ERROR)
        return None
    company = queryset.order_by("name").first()
    if company is None:
        return None
    data = request.POST if "apply" in request.POST else None
    form = OverrideAccessForm(data, company=company)
    preview = None
    if form.is_bound and form.is_valid():
        changes = form.changes()
        if form.cleaned_data.get("confirmed"):
            try:
                feature_access_set(
                    company=company, feature=form.cleaned_data["feature"], changes=changes,
                    actor=_actor(request), reason=form.cleaned_data["reason"],
                )
            except ApplicationError as error:
                _application_error_to_form(form, error)
            else:
                modeladmin.message_user(
                    request, f"{company.name}: {form.cleaned_data['feature'].code} override set.", messages.SUCCESS
                )
                return None
        else:
            preview = _override_preview(company, form.cleaned_data["feature"], changes)
            form.data = form.data.copy()
            form.data["confirmed"] = "True"
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"Override access: {company.name}",
        "opts": modeladmin.model._meta,
        "companies": [company],
        "form": form,
        "preview": preview,
        "action_name": "entitlements_override_access",
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "rows_url": reverse("admin:entitlements_featureaccess_changelist") + f"?company__id__exact={company.pk}",
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/entitlements/override_access.html", context)


admin_extensions.register_company_list_column(company_tier_column)
admin_extensions.register_company_summary(company_tier_summary)
admin_extensions.register_company_action(entitlements_override_access, permission="entitlements.change_featureaccess")
