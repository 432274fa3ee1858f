"""Service credentials in the admin (SPEC §9, Billing admin): created here
and shown once on the page after the save, revocable, never displayed again.
Imported by companies/admin.py."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from unfold.admin import ModelAdmin

from . import services
from .admin import RevokedFilter
from .admin_secrets import SecretShownOnceMixin
from .models import ServiceCredential


class ServiceCredentialAddForm(forms.ModelForm):
    class Meta:
        model = ServiceCredential
        fields = ["product", "service_name"]


@admin.register(ServiceCredential)
class ServiceCredentialAdmin(SecretShownOnceMixin, ModelAdmin):
    list_display = ["service_name", "prefix_display", "product", "created_at", "created_by", "revoked_at"]
    list_filter = [RevokedFilter, "product"]
    search_fields = ["service_name", "prefix"]
    list_select_related = ["product", "created_by"]
    exclude = ["secret"]
    actions = ["revoke_selected"]
    show_full_result_count = False
    secret_template = "admin/companies/servicecredential/secret_created.html"
    secret_title = "Service credential created"
    secret_context_names = ("credential", "secret")

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

    def create_with_secret(self, request, obj):
        return services.service_credential_create(
            product=obj.product, service_name=obj.service_name, created_by=request.user
        )

    @admin.action(description="Revoke selected credentials", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for credential in queryset.filter(revoked_at__isnull=True):
            services.service_credential_revoke(credential=credential)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} credential(s). They stop working at once.", messages.SUCCESS)
