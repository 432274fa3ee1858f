"""Fewer indexes on the debit's hot path: foreign keys of ledger entries and
lots get no index of their own where a composite index already starts with
them or nothing looks rows up by them (each index costs every insert), and
the lots' `(wallet) WHERE remaining > 0` index, which duplicated the foreign
key's, goes.

Dropping a column's own index (`db_index=False`) also makes PostgreSQL's
schema editor drop the partial unique index on that column
(`ledger_one_fallback_per_reservation`), so it is made again at the end."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('companies', '0004_ratelimitcounter'),
        ('credits', '0003_ledger_idempotency_per_product'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='creditlot',
            name='lot_spendable_idx',
        ),
        migrations.RemoveIndex(
            model_name='ledgerentry',
            name='ledger_reference_idx',
        ),
        migrations.AlterField(
            model_name='creditlot',
            name='transferred_from',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='credits.creditlot'),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='lot',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='credits.creditlot'),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='product',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='companies.product'),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='reference',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='credits.ledgerentry'),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='reservation',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='credits.reservation'),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='wallet',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='credits.wallet'),
        ),
        migrations.AddIndex(
            model_name='ledgerentry',
            index=models.Index(condition=models.Q(('reference__isnull', False)), fields=['reference'], name='ledger_reference_idx'),
        ),
        migrations.AddIndex(
            model_name='ledgerentry',
            index=models.Index(condition=models.Q(('reservation__isnull', False)), fields=['reservation'], name='ledger_reservation_idx'),
        ),
        migrations.RunSQL(
            sql=[
                "DROP INDEX IF EXISTS ledger_one_fallback_per_reservation",
                "CREATE UNIQUE INDEX ledger_one_fallback_per_reservation ON credits_ledgerentry (reservation_id) "
                "WHERE kind = 'fallback'",
            ],
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
