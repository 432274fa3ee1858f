"""POST /stripe/webhook: no API key — Stripe proves itself with the
`Stripe-Signature` header (verified against STRIPE_WEBHOOK_SECRET)."""

from __future__ import annotations

from django.http import JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from config.api import error_response
from config.errors import ApplicationError, PayloadTooLarge

from ..services.webhooks import webhook_event_receive

MAX_WEBHOOK_BYTES = 1024 * 1024


@method_decorator(csrf_exempt, name="dispatch")
class StripeWebhookView(View):
    http_method_names = ["post"]

    def post(self, request):
        if len(request.body) > MAX_WEBHOOK_BYTES:
            too_large = PayloadTooLarge(f"Webhook payloads are limited to {MAX_WEBHOOK_BYTES} bytes.")
            return error_response(too_large, request=request)
        try:
            stored = webhook_event_receive(
                payload=request.body, signature=request.headers.get("Stripe-Signature", "")
            )
        except ApplicationError as error:
            return error_response(error, request=request)
        return JsonResponse({"received": True, "eventId": stored.stripe_event_id, "status": stored.status})
