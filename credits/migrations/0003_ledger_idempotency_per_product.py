"""Idempotency keys of ledger entries are unique per product (SPEC §2), not
per wallet: entries carry their wallet's product. Existing entries get it
from their wallet (the append-only trigger is paused for this one backfill
on PostgreSQL); a key used in two wallets of one product before this
migration keeps its first use and the later ones are suffixed with their
wallet id, so the new unique index can be built."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Q

TRIGGER = "credits_ledger_append_only"


def backfill(apps, schema_editor):
    LedgerEntry = apps.get_model("credits", "LedgerEntry")
    postgres = schema_editor.connection.vendor == "postgresql"
    if not LedgerEntry.objects.exists():
        return
    if postgres:
        # ALTER TABLE refuses to run while deferred constraint checks of this
        # transaction are pending: run them first (and again before re-enabling).
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        schema_editor.execute(f"ALTER TABLE credits_ledgerentry DISABLE TRIGGER {TRIGGER}")
    try:
        schema_editor.execute(
            "UPDATE credits_ledgerentry SET product_id = "
            "(SELECT w.product_id FROM credits_wallet w WHERE w.id = credits_ledgerentry.wallet_id)"
        )
        seen = set()
        for entry in (
            LedgerEntry.objects.filter(idempotency_key__isnull=False)
            .order_by("created_at", "id")
            .only("id", "product_id", "wallet_id", "idempotency_key")
        ):
            scope = (entry.product_id, entry.idempotency_key)
            if scope in seen:
                LedgerEntry.objects.filter(pk=entry.pk).update(
                    idempotency_key=f"{entry.idempotency_key[:200]}:{entry.wallet_id}"
                )
            seen.add(scope)
    finally:
        if postgres:
            schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            schema_editor.execute(f"ALTER TABLE credits_ledgerentry ENABLE TRIGGER {TRIGGER}")
            schema_editor.execute("SET CONSTRAINTS ALL DEFERRED")


class Migration(migrations.Migration):
    dependencies = [
        ("companies", "0003_servicecredential_servicenonce_and_more"),
        ("credits", "0002_ledger_append_only"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="ledgerentry", name="ledger_unique_idempotency_key"),
        migrations.AddField(
            model_name="ledgerentry",
            name="product",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="companies.product"
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="ledgerentry",
            name="product",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="companies.product"
            ),
        ),
        migrations.AddConstraint(
            model_name="ledgerentry",
            constraint=models.UniqueConstraint(
                condition=Q(idempotency_key__isnull=False),
                fields=("product", "idempotency_key"),
                name="ledger_idempotency_key_per_product",
            ),
        ),
    ]
