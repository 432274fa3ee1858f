"""Billing's writes, by concern. Import from the submodules:

- `billing.services.subscriptions`: checkout_claim, subscription_link, billing_profile_ensure, …
- `billing.services.onboarding`: onboard
- `billing.services.webhooks`: webhook_event_receive, webhook_event_process, webhook_events_reprocess
- `billing.services.delivery`: deliver_pending_usage (the delivery state itself: `metering.services.delivery`)
- `billing.services.reconciliation`: meters_reconcile
- `billing.services.tiers`: tier_resolve
"""
