import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Billing profiles per account (company × product, SPEC §2), step 1."""

    dependencies = [
        ("billing", "0004_push_billing_periods"),
        ("companies", "0007_company_fields_moved_to_accounts"),
    ]

    operations = [
        migrations.AlterField(
            model_name="billingprofile",
            name="company",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="billing_profiles", to="companies.company"
            ),
        ),
        migrations.AddField(
            model_name="billingprofile",
            name="product",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="companies.product"
            ),
        ),
    ]
