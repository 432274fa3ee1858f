from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self):
        from credits.services.refills import refill_requested

        refill_requested.connect(_enqueue_auto_refill, dispatch_uid="billing.auto_refill")


def _enqueue_auto_refill(sender, wallet_id, **kwargs):
    """A debit left a wallet under its refill threshold (on commit): run the job now-ish."""
    from billing.tasks import auto_refill
    from config.tasks import enqueue

    enqueue(auto_refill)  # already on commit; a broker outage leaves it to the beat
