"""Turn today's hand-set access rows (source manual/trial/api) into
overrides without changing any company's effective access (issue 14).

Before access layers a hand-set row *was* the access: in force inside its
window, disabled outside it. Each such row becomes an override setting all
four fields with the same window, who/why from its history. Its tier layer:

- if the override is in force now and the row still names the tier it came
  from (and the tier grants the feature), the tier's values — so the day the
  override ends the feature falls back to the tier (the fix of issue 14);
- otherwise the row's own values, disabled: what the check answers today
  outside the window (an expired trial stays off until the next tier apply).

`tests/entitlements/test_layers_migration.py` computes every check before
and after and compares them."""

from django.db import migrations
from django.utils import timezone

LAYER_FIELDS = ("is_enabled", "quantity_limit", "included_quantity", "config")


def _in_force(row, now) -> bool:
    return (row.valid_from is None or row.valid_from <= now) and (row.valid_until is None or now < row.valid_until)


def hand_rows_to_overrides(apps, schema_editor):
    FeatureAccess = apps.get_model("entitlements", "FeatureAccess")
    TierFeature = apps.get_model("entitlements", "TierFeature")
    now = timezone.now()
    rows = FeatureAccess.objects.exclude(source="subscription").order_by("pk")
    for row in rows.iterator():
        row.overrides = {name: getattr(row, name) for name in LAYER_FIELDS}
        row.set_at = row.updated_at
        row.set_by = row.set_by or "migration"
        row.reason = row.reason or "Set by hand before access layers (migrated to an override)."
        tier_feature = (
            TierFeature.objects.filter(tier_id=row.tier_id, feature_id=row.feature_id).first() if row.tier_id else None
        )
        row.tier_granted = True
        if tier_feature is not None and _in_force(row, now):
            row.is_enabled = tier_feature.is_enabled
            row.quantity_limit = tier_feature.quantity_limit
            row.included_quantity = tier_feature.included_quantity
            row.config = dict(tier_feature.config or {})
        else:
            row.is_enabled = False
        row.save(
            update_fields=[
                "overrides", "set_at", "set_by", "reason", "tier_granted", *LAYER_FIELDS,
            ]
        )


def overrides_to_hand_rows(apps, schema_editor):
    """Backwards: the override's values become the row's values again."""
    FeatureAccess = apps.get_model("entitlements", "FeatureAccess")
    for row in FeatureAccess.objects.exclude(source="subscription").order_by("pk").iterator():
        for name in LAYER_FIELDS:
            if name in row.overrides:
                setattr(row, name, row.overrides[name])
        if row.source == "promotion":
            row.source = "manual"
        row.save(update_fields=[*LAYER_FIELDS, "source"])


class Migration(migrations.Migration):
    dependencies = [("entitlements", "0006_access_layers")]

    operations = [migrations.RunPython(hand_rows_to_overrides, overrides_to_hand_rows)]
