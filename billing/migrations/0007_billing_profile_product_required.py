import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Billing profiles per account, step 3: the product is required, one profile per account."""

    dependencies = [("billing", "0006_billing_profiles_to_accounts")]

    operations = [
        migrations.AlterField(
            model_name="billingprofile",
            name="product",
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+", to="companies.product"),
        ),
        migrations.AddConstraint(
            model_name="billingprofile",
            constraint=models.UniqueConstraint(fields=("company", "product"), name="billing_profile_one_per_account"),
        ),
    ]
