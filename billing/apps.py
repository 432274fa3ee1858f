from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # `billing_period` usage meters follow the subscription's period
        # (metering cannot import billing: dependencies point the other way).
        from metering.periods import register_billing_period_resolver

        from .selectors import billing_period_for

        register_billing_period_resolver(billing_period_for)
