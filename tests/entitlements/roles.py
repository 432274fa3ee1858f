"""Staff users in the roles of SPEC §9 for the admin tests."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

SUPPORT_FALLBACK = [
    "entitlements.view_feature",
    "entitlements.view_tier",
    "entitlements.view_tierfeature",
    "entitlements.view_featureaccess",
    "entitlements.add_featureaccess",
    "entitlements.change_featureaccess",
    "companies.view_company",
    "companies.view_productlink",
    "companies.view_contact",
]


def _group(name: str) -> Group:
    """The role group, synced from companies.roles (the real matrix); a
    minimal stand-in only if that module is missing."""
    try:
        from companies.roles import create_all_permissions, sync_role_groups
    except ImportError:  # pragma: no cover - only before companies ships its roles
        group, _ = Group.objects.get_or_create(name=name)
        for label in SUPPORT_FALLBACK:
            app_label, codename = label.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return group
    if not Group.objects.filter(name=name, permissions__isnull=False).exists():
        create_all_permissions()
        sync_role_groups()
    return Group.objects.get(name=name)


def staff_user(role: str, username: str, password: str = "pw-for-tests-1"):
    user = get_user_model().objects.create_user(username, password=password, is_staff=True)
    user.groups.add(_group(role))
    return user
