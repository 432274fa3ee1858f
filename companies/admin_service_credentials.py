"""Service credentials in the admin (SPEC §9, Billing admin): created here
and shown once on the page after the save, revocable, never displayed again.
Imported by companies/admin.py."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from . import services
from .admin import RevokedFilter
from .models import ServiceCredential


class ServiceCredentialAddForm(forms.ModelForm):
    class Meta:
        model = ServiceCredential
        fields = ["product", "service_name"]


@admin.register(ServiceCredential)
class ServiceCredentialAdmin(admin.ModelAdmin):
    list_display = ["service_name", "prefix_display", "product", "created_at", "created_by", "revoked_at"]
    list_filter = [RevokedFilter, "product"]
    search_fields = ["service_name", "prefix"]
    list_select_related = ["product", "created_by"]
    exclude = ["secret"]
    actions = ["revoke_selected"]
    show_full_result_count = False

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ServiceCredentialAddForm
            kwargs["fields"] = ["product", "service_name"]
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["product", "service_name"]
        return ["service_name", "product", "prefix_display", "created_at", "created_by", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["service_name", "product", "prefix_display", "created_at", "created_by", "revoked_at"]

    @admin.display(description="Secret")
    def prefix_display(self, credential: ServiceCredential) -> str:
        return f"{credential.prefix}…"

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead

    def save_model(self, request, obj, form, change):
        if change:
            return
        created, secret = services.service_credential_create(
            product=obj.product, service_name=obj.service_name, created_by=request.user
        )
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if k != "_state"})
        obj._state.adding = False
        obj._state.db = created._state.db
        request._new_service_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_new_service_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Service credential created",
            "credential": obj,
            "secret": secret,
        }
        response = TemplateResponse(request, "admin/companies/servicecredential/secret_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected credentials", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for credential in queryset.filter(revoked_at__isnull=True):
            services.service_credential_revoke(credential=credential)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} credential(s). They stop working at once.", messages.SUCCESS)
