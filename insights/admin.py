"""Insights in the admin: the lifecycle status history (read-only)."""

from __future__ import annotations

from django.contrib import admin
from unfold.admin import ModelAdmin

from .models import AccountStatusChange


@admin.register(AccountStatusChange)
class AccountStatusChangeAdmin(ModelAdmin):
    list_display = ["created_at", "company", "product", "from_status", "to_status", "cause", "actor_label"]
    list_filter = ["product", "to_status", "cause"]
    search_fields = ["company__name", "company__short_id", "=company__id"]
    list_select_related = ["company", "product"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
