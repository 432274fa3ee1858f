"""The staff groups of SPEC §9, created by migration and kept up to date."""

import pytest
from django.contrib.auth.models import Group, Permission

from companies.roles import BILLING_ADMIN, SUPPORT, resolve_permissions, sync_role_groups

pytestmark = pytest.mark.django_db


def _labels(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_groups_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= {SUPPORT, BILLING_ADMIN}


def test_support_permissions():
    labels = _labels(SUPPORT)
    assert {"companies.view_company", "companies.view_contact", "companies.change_contact",
            "companies.add_contact", "companies.view_productlink"} <= labels
    assert not {label for label in labels if "apikey" in label}
    assert "companies.delete_company" not in labels
    assert "companies.change_company" not in labels
    # No catalog edits: features, tiers and their features are view-only.
    for model in ("feature", "tier", "tierfeature"):
        assert f"entitlements.view_{model}" in labels
        assert not {f"entitlements.{verb}_{model}" for verb in ("add", "change", "delete")} & labels
    assert "entitlements.change_featureaccess" in labels


def test_billing_admin_is_support_plus():
    support, billing_admin = _labels(SUPPORT), _labels(BILLING_ADMIN)
    assert support < billing_admin
    assert {"companies.add_apikey", "companies.view_apikey", "companies.change_apikey",
            "companies.change_company"} <= billing_admin
    assert "companies.delete_company" not in billing_admin
    assert "companies.delete_apikey" not in billing_admin


def test_matrix_covers_future_models_and_skips_missing_ones():
    labels = ["metering.view_something_new", "metering.adjust_usage", "credits.grant_credits",
              "billing.reprocess_webhook", "companies.view_apikey", "billing.delete_subscription"]
    assert resolve_permissions(labels, SUPPORT) == {
        "metering.view_something_new", "metering.adjust_usage", "credits.grant_credits"}
    assert resolve_permissions(labels, BILLING_ADMIN) == set(labels)


def test_sync_is_idempotent_and_keeps_manual_grants():
    support = Group.objects.get(name=SUPPORT)
    extra = Permission.objects.get(content_type__app_label="auth", codename="view_user")
    support.permissions.add(extra)
    before = _labels(SUPPORT)
    sync_role_groups()
    sync_role_groups()
    assert _labels(SUPPORT) == before
    assert Group.objects.filter(name=SUPPORT).count() == 1


def test_sync_grants_permissions_of_models_added_later():
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.create(app_label="billing", model="brandnewthing")
    Permission.objects.create(content_type=content_type, codename="view_brandnewthing", name="Can view")
    sync_role_groups()
    assert "billing.view_brandnewthing" in _labels(SUPPORT)
