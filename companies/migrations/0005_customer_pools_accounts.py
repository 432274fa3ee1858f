import django.db.models.deletion
import django.utils.timezone
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):
    """Customer pools and accounts (SPEC §2), step 1: the new columns and table."""

    dependencies = [
        ('companies', '0004_ratelimitcounter'),
    ]

    operations = [
        migrations.CreateModel(
            name='Account',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('status', models.CharField(choices=[('prospect', 'Prospect'), ('active', 'Active'), ('at_risk', 'At risk'), ('churned', 'Churned')], default='active', max_length=16)),
                ('mrr', models.BigIntegerField(default=0, help_text='Monthly recurring revenue in minor units of `currency`.')),
                ('currency', models.CharField(default='usd', help_text='ISO 4217, lower case.', max_length=3)),
                ('metadata', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['product__code'],
            },
        ),
        migrations.AddField(
            model_name='account',
            name='company',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='accounts', to='companies.company'),
        ),
        migrations.AddField(
            model_name='account',
            name='product',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='accounts', to='companies.product'),
        ),
        migrations.AddIndex(
            model_name='account',
            index=models.Index(fields=['product', 'status'], name='account_product_status_idx'),
        ),
        migrations.AddConstraint(
            model_name='account',
            constraint=models.UniqueConstraint(fields=('company', 'product'), name='account_unique_company_product'),
        ),
        migrations.AddConstraint(
            model_name='account',
            constraint=models.CheckConstraint(condition=models.Q(('mrr__gte', 0)), name='account_mrr_non_negative'),
        ),
        migrations.AddField(
            model_name='company',
            name='customer_pool',
            field=models.SlugField(blank=True, help_text='The customer pool the company lives in: the pool of the product that created it.', max_length=64),
        ),
        migrations.AddField(
            model_name='company',
            name='match_name',
            field=models.CharField(blank=True, default='', editable=False, max_length=400),
        ),
        migrations.AddField(
            model_name='product',
            name='customer_pool',
            field=models.SlugField(blank=True, help_text="Products of one pool share their customers (smart link and onboard match only companies of the pool). Empty: the product's code, i.e. a pool of its own.", max_length=64),
        ),
    ]
