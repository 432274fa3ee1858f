"""Shared pieces of the API views: input validation and the documented error
responses (the SPEC §2 envelope) for drf-spectacular."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from config.errors import ErrorCode

ERROR_DESCRIPTIONS = {
    400: "Invalid input (details.fields names each bad field).",
    401: "Missing, malformed, unknown or revoked API key.",
    402: "Not enough credits (details.required, details.available).",
    403: "Authenticated but not allowed (e.g. a signed request debiting for another service).",
    404: "Unknown, or not visible to this key's product.",
    409: "Conflict: idempotency key reused with another body, or already linked elsewhere.",
    412: "Usage limit would be exceeded, or the feature is disabled or expired.",
    423: "Credit wallet frozen, or the company suspended (details.reason).",
    429: "Rate limited (Retry-After).",
    503: "A backing service (database, Stripe) is unavailable; safe to retry.",
}


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=[code.value for code in ErrorCode])
    message = serializers.CharField()
    httpStatus = serializers.IntegerField()
    details = serializers.JSONField()
    requestId = serializers.CharField()


class ErrorEnvelopeSerializer(serializers.Serializer):
    """The error shape of SPEC §2 (documentation only)."""

    error = ErrorBodySerializer()


def error_responses(*statuses: int, **descriptions: str) -> dict:
    """OpenAPI responses for the given error statuses, plus 401 and 429 that
    every authenticated endpoint can answer. `descriptions` overrides the text
    per status (`_409="…"`)."""
    overrides = {int(key.lstrip("_")): text for key, text in descriptions.items()}
    codes = sorted({401, 429, *statuses})
    return {
        code: OpenApiResponse(ErrorEnvelopeSerializer, description=overrides.get(code, ERROR_DESCRIPTIONS[code]))
        for code in codes
    }


def validated(serializer_class, data) -> dict:
    """Validated data of `serializer_class` or a 400 (via the exception handler)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
