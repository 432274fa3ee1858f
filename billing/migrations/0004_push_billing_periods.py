"""Metering's `billing_period` meters used to ask billing for the period
through a registered resolver; billing now pushes the periods of granting
subscriptions into metering's BillingPeriod table. This fills it once from
the subscriptions that exist."""

from django.db import migrations

GRANTING = ("active", "trialing", "past_due")


def push_periods(apps, schema_editor):
    Subscription = apps.get_model("billing", "Subscription")
    BillingPeriod = apps.get_model("metering", "BillingPeriod")
    rows = (
        Subscription.objects.filter(
            status__in=GRANTING, current_period_start__isnull=False, current_period_end__isnull=False
        )
        .values_list("company_id", "current_period_start", "current_period_end")
        .distinct()
    )
    BillingPeriod.objects.bulk_create(
        [
            BillingPeriod(company_id=company_id, period_start=start, period_end=end)
            for company_id, start, end in rows
            if end > start
        ],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_retry_usage_delivery_permission"),
        ("metering", "0004_billing_period"),
    ]

    operations = [migrations.RunPython(push_periods, migrations.RunPython.noop)]
