from django.urls import path

from .webhooks import StripeWebhookView

urlpatterns = [
    path("webhook", StripeWebhookView.as_view(), name="stripe-webhook"),
]
