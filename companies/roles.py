"""The staff roles of SPEC §9 as Django groups, and the one function that
brings them up to date.

The matrix lists permissions as "app_label.codename" patterns (fnmatch
wildcards allowed) and covers apps and models that may not exist yet; a
pattern that matches nothing is skipped. `sync_role_groups` runs from a data
migration and again after every `migrate` (post_migrate), so a model added
later by entitlements, metering or billing is granted without a new
migration here. Syncing only ever *adds* permissions: a permission staff
granted a group by hand survives a deploy."""

from __future__ import annotations

from fnmatch import fnmatchcase

SUPPORT = "Support"
BILLING_ADMIN = "Billing admin"

BACK_OFFICE_APPS = ("companies", "notifications", "credits", "entitlements", "metering", "billing", "insights", "desk")

_SUPPORT_GRANTS = (
    # View everything in the back office ...
    *(f"{app}.view_*" for app in BACK_OFFICE_APPS),
    # ... edit contacts and feature access ...
    "companies.add_contact",
    "companies.change_contact",
    "entitlements.add_featureaccess",
    "entitlements.change_featureaccess",
    # ... and adjust usage / grant credits (custom permissions of
    # metering.UsageMeter and credits.Wallet; both require a reason).
    "metering.adjust_usage",
    "credits.grant_credits",
)
# Support never sees API keys (not even their prefixes).
_SUPPORT_DENIES = ("companies.*apikey", "companies.*servicecredential")

_BILLING_ADMIN_GRANTS = (
    *_SUPPORT_GRANTS,
    "companies.change_company",
    # The customer pool of a product (SPEC §2) and the per-product accounts.
    "companies.change_product",
    "companies.change_account",
    "companies.add_apikey",
    "companies.change_apikey",
    "companies.view_apikey",
    # Tier changes of a company (the Apply tier… action, SPEC §9).
    "entitlements.apply_tier",
    "companies.suspend_account",
    "entitlements.add_feature",
    "entitlements.change_feature",
    "entitlements.delete_feature",
    "entitlements.add_tier",
    "entitlements.change_tier",
    "entitlements.delete_tier",
    "entitlements.add_tierfeature",
    "entitlements.change_tierfeature",
    "entitlements.delete_tierfeature",
    "billing.add_subscription",
    "billing.change_subscription",
    "billing.delete_subscription",
    "billing.add_billingprofile",
    "billing.change_billingprofile",
    "billing.delete_billingprofile",
    "billing.reprocess_webhook",
    "billing.refund_creditpurchase",
    "billing.send_statement",
    "credits.freeze_wallet",
    "companies.add_servicecredential",
    "companies.change_servicecredential",
    "companies.view_servicecredential",
    "metering.retry_usage_delivery",
    "notifications.add_webhookendpoint",
    "notifications.change_webhookendpoint",
    "notifications.delete_webhookendpoint",
    "notifications.resend_delivery",
    # Segments (SPEC §8): defined by Billing admin, seen by Support.
    "insights.add_segment",
    "insights.change_segment",
    "insights.delete_segment",
    "insights.sync_segment",
    # Merge a duplicate company into the one that stays (SPEC §3, desk).
    "desk.merge_companies",
)
# No role deletes companies or API keys: keys are revoked, not deleted.
_BILLING_ADMIN_DENIES = ("companies.delete_company", "companies.delete_apikey", "companies.delete_servicecredential")

ROLE_MATRIX: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    SUPPORT: (_SUPPORT_GRANTS, _SUPPORT_DENIES),
    BILLING_ADMIN: (_BILLING_ADMIN_GRANTS, _BILLING_ADMIN_DENIES),
}


def _matches(label: str, patterns) -> bool:
    return any(fnmatchcase(label, pattern) for pattern in patterns)


def resolve_permissions(all_labels, role: str) -> set[str]:
    """The "app_label.codename" labels from `all_labels` the role gets."""
    grants, denies = ROLE_MATRIX[role]
    return {label for label in all_labels if _matches(label, grants) and not _matches(label, denies)}


def sync_role_groups(apps=None) -> None:
    """Create the groups if missing and add every permission of the matrix
    that exists. Idempotent. `apps` is a migration's app registry (or None
    for the real one)."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    rows = Permission.objects.filter(content_type__app_label__in=BACK_OFFICE_APPS).values_list(
        "pk", "content_type__app_label", "codename"
    )
    pk_by_label = {f"{app_label}.{codename}": pk for pk, app_label, codename in rows}
    for role in ROLE_MATRIX:
        group, _ = Group.objects.get_or_create(name=role)
        wanted = {pk_by_label[label] for label in resolve_permissions(pk_by_label, role)}
        present = set(group.permissions.values_list("pk", flat=True))
        missing = wanted - present
        if missing:
            group.permissions.add(*missing)


def create_all_permissions(apps=None, *, using: str = "default") -> None:
    """Django creates permissions after migrate, app by app; the groups need
    them now, for every app, before the first sync. With a migration's state
    registry this is the usual data-migration recipe."""
    from django.contrib.auth.management import create_permissions

    if apps is None:
        from django.apps import apps as global_apps

        for app_config in global_apps.get_app_configs():
            create_permissions(app_config, verbosity=0, using=using)
        return
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, using=using, apps=apps)
        app_config.models_module = None


def sync_roles_after_migrate(sender, using="default", apps=None, **kwargs) -> None:
    """post_migrate receiver (connected for the companies app only)."""
    create_all_permissions(using=using)
    sync_role_groups()
