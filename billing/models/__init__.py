# Billing's models are split by concern; import them all here so Django sees them.
from .invoices import Invoice
from .meters import MeterDrift
from .prices import Price, PriceInterval
from .profiles import BillingProfile
from .purchases import CreditPurchase, PurchaseOrigin, PurchaseStatus
from .subscriptions import GRANTING_STATUSES, Subscription, SubscriptionStatus
from .webhooks import StripeWebhookEvent, WebhookEventStatus

__all__ = [
    "GRANTING_STATUSES",
    "BillingProfile",
    "CreditPurchase",
    "PurchaseOrigin",
    "PurchaseStatus",
    "Invoice",
    "MeterDrift",
    "Price",
    "PriceInterval",
    "StripeWebhookEvent",
    "Subscription",
    "SubscriptionStatus",
    "WebhookEventStatus",
]
