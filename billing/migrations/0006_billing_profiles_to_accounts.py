"""Billing profiles per account, step 2: each existing profile (one per
company until now) belongs to the product whose subscriptions bill that
Stripe customer, else to the company's first linked product. A profile of a
company linked to no product and billing no subscription has no account to
belong to and is removed (nothing could have been billed to it)."""

from django.db import migrations


def forwards(apps, schema_editor):
    BillingProfile = apps.get_model("billing", "BillingProfile")
    Subscription = apps.get_model("billing", "Subscription")
    ProductLink = apps.get_model("companies", "ProductLink")
    orphans = []
    for profile in BillingProfile.objects.filter(product__isnull=True):
        product_id = (
            Subscription.objects.filter(company_id=profile.company_id, stripe_customer_id=profile.stripe_customer_id)
            .order_by("created_at")
            .values_list("product_id", flat=True)
            .first()
        ) or (
            ProductLink.objects.filter(company_id=profile.company_id)
            .order_by("created_at")
            .values_list("product_id", flat=True)
            .first()
        )
        if product_id is None:
            orphans.append(profile.pk)
            continue
        profile.product_id = product_id
        profile.save(update_fields=["product"])
    BillingProfile.objects.filter(pk__in=orphans).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_billing_profile_per_account")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
