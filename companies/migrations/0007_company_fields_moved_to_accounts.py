import django.db.models.deletion
import django.utils.timezone
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):
    """Customer pools and accounts, step 3: drop what moved to the accounts;
    shortId unique per pool instead of globally."""

    dependencies = [
        ('companies', '0006_accounts_from_companies'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='company',
            name='company_mrr_non_negative',
        ),
        migrations.RemoveField(
            model_name='company',
            name='metadata',
        ),
        migrations.RemoveField(
            model_name='company',
            name='mrr',
        ),
        migrations.RemoveField(
            model_name='company',
            name='status',
        ),
        migrations.AlterField(
            model_name='company',
            name='short_id',
            field=models.SlugField(max_length=80),
        ),
        migrations.AddIndex(
            model_name='company',
            index=models.Index(fields=['customer_pool', 'domain'], name='company_pool_domain_idx'),
        ),
        migrations.AddConstraint(
            model_name='company',
            constraint=models.UniqueConstraint(fields=('customer_pool', 'short_id'), name='company_short_id_unique_in_pool'),
        ),
        migrations.AddConstraint(
            model_name='product',
            constraint=models.CheckConstraint(condition=models.Q(('customer_pool', ''), _negated=True), name='product_customer_pool_set'),
        ),
    ]
