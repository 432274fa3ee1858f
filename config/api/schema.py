"""The OpenAPI schema tells the truth (SPEC §2), in one place.

Everything the views would otherwise repeat is done here, once:

- **Errors**: one `ErrorBody` object everywhere (envelopes and batch items), its `code` an
  enum of every code the hierarchy in `config.errors` can answer, and typed `details` per
  status: `fields` on 400, the numbers on 402 and 412 (`error_responses()`).
- **Requests** (`StrictSerializerExtension`): `additionalProperties: false` on every body
  the server checks for unknown fields, and `oneOf` for "exactly one of" rules
  (`companyId` or `externalOrgId`).
- **Fields**: `JSONObjectField` is an object (never `null` unless allowed); trimmed
  non-blank strings carry `pattern: \\S` (a string of spaces is blank to the server).
- **Every operation**: the 401, 429 and 503 every authenticated call can answer
  (`AutoSchema`); `X-Request-Id` on every response (`postprocess_schema`),
  `Retry-After` on 429/503, `Idempotent-Replayed` on the success answers of operations
  that take an idempotency key, and `servers`. An operation without a `summary` fails the
  schema test (tests/schema/).
"""

from __future__ import annotations

import re

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from config.errors import ErrorCode

# --- Error responses ----------------------------------------------------------------

ERROR_DESCRIPTIONS = {
    400: "Invalid input (details.fields names each bad field).",
    401: "Missing, malformed, unknown or revoked API key.",
    402: "Not enough credits (details.required, details.available), or a card declined (details.declineCode).",
    403: "Authenticated but not allowed (e.g. a signed request debiting for another service).",
    404: "Unknown, or not visible to this key's product.",
    405: "Method not allowed on this path (Allow lists the allowed ones).",
    409: "Conflict: idempotency key reused with another body, or already linked elsewhere.",
    412: "The feature cannot be used (details.status): limit reached, disabled, not granted, suspended.",
    413: "Request body too large.",
    415: "Send the body as application/json.",
    423: "Locked: credit wallet frozen, or the company suspended (details.reason).",
    429: "Rate limited; retry after Retry-After seconds.",
    503: "A backing service (database, Stripe) is unavailable; safe to retry.",
}

CHECK_STATUSES = ("active", "limit_reached", "no_credits", "disabled", "not_granted", "suspended")


class ErrorBodySerializer(serializers.Serializer):
    """The one error object of SPEC §2, in every envelope and batch item."""

    code = serializers.ChoiceField(choices=[code.value for code in ErrorCode])
    message = serializers.CharField()
    httpStatus = serializers.IntegerField(min_value=400, max_value=599)
    details = serializers.DictField(help_text="More about the error; its keys depend on the status.")
    requestId = serializers.CharField(help_text="The X-Request-Id of the request.")


class ValidationErrorDetailsSerializer(serializers.Serializer):
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field path (`contacts.3.email`, `nonFieldErrors`) → messages.",
    )


class PaymentRequiredDetailsSerializer(serializers.Serializer):
    required = serializers.IntegerField(required=False, help_text="Credits the call needs.")
    available = serializers.IntegerField(required=False, help_text="Credits the wallet has.")
    declineCode = serializers.CharField(required=False, help_text="Stripe's decline code of a declined card.")


class PreconditionFailedDetailsSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CHECK_STATUSES, required=False, help_text="The check status.")
    featureCode = serializers.CharField(required=False)
    currentUsage = serializers.IntegerField(required=False)
    quantityLimit = serializers.IntegerField(required=False)
    requested = serializers.IntegerField(required=False)


def _error_body(name: str, details: serializers.Serializer) -> type[serializers.Serializer]:
    return type(f"{name}BodySerializer", (ErrorBodySerializer,), {"__module__": __name__, "details": details})


def _envelope(name: str, body: type[serializers.Serializer]) -> type[serializers.Serializer]:
    return type(
        f"{name}Serializer",
        (serializers.Serializer,),
        {"__module__": __name__, "__doc__": "The error envelope of SPEC §2.", "error": body()},
    )


ErrorEnvelopeSerializer = _envelope("ErrorEnvelope", ErrorBodySerializer)
ValidationErrorSerializer = _envelope(
    "ValidationError", _error_body("ValidationError", ValidationErrorDetailsSerializer())
)
PaymentRequiredErrorSerializer = _envelope(
    "PaymentRequiredError", _error_body("PaymentRequiredError", PaymentRequiredDetailsSerializer())
)
PreconditionFailedErrorSerializer = _envelope(
    "PreconditionFailedError", _error_body("PreconditionFailedError", PreconditionFailedDetailsSerializer())
)
_ENVELOPE_BY_STATUS = {
    400: ValidationErrorSerializer,
    402: PaymentRequiredErrorSerializer,
    412: PreconditionFailedErrorSerializer,
}


def error_response(status: int, description: str | None = None) -> OpenApiResponse:
    return OpenApiResponse(
        _ENVELOPE_BY_STATUS.get(status, ErrorEnvelopeSerializer),
        description=description or ERROR_DESCRIPTIONS.get(status, "Error."),
    )


def error_responses(*statuses: int, **descriptions: str) -> dict:
    """OpenAPI responses for the given error statuses (401, 429 and 503, which every
    authenticated call can answer, are added to every operation by the hook).
    `descriptions` overrides the text per status (`_409="…"`)."""
    overrides = {int(key.lstrip("_")): text for key, text in descriptions.items()}
    return {code: error_response(code, overrides.get(code)) for code in sorted(set(statuses))}


def validated(serializer_class, data) -> dict:
    """Validated data of `serializer_class` or a 400 (via the exception handler)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- Headers ----------------------------------------------------------------------------

IDEMPOTENCY_KEY_MAX = 200


def idempotency_key_header(*, required: bool, description: str) -> OpenApiParameter:
    """The `Idempotency-Key` request header (SPEC §2) as every operation that takes
    it documents it: printable ASCII, 1–200 characters, no space at either end."""
    return OpenApiParameter(
        "Idempotency-Key",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        required=required,
        description=description,
        pattern=r"^[!-~](?:[ -~]{0,%d}[!-~])?$" % (IDEMPOTENCY_KEY_MAX - 2),
    )


# --- Request bodies and fields -------------------------------------------------------

# A character that str.strip() keeps, in a form ECMA and Python regexes read alike
# (Python counts \x1c-\x1f and \x85 as whitespace, ECMA does not).
NON_BLANK_PATTERN = r"[^\s\x1c-\x1f\x85]"


class StrictSerializerExtension(OpenApiSerializerExtension):
    """Bodies of `StrictSerializer`s refuse unknown fields: say so. `exactly_one_of`
    on a serializer (field names) becomes a `oneOf` of `required` alternatives,
    `at_most_one_of` (string fields) a `not` of both given."""

    target_class = "config.api.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        if type(self.target).__doc__ is None:
            # Not StrictSerializer's own docstring, inherited by every body.
            schema.pop("description", None)
        if direction == "request":
            schema["additionalProperties"] = False
            alternatives = getattr(self.target, "exactly_one_of", ())
            if alternatives:
                schema["oneOf"] = [{"required": [name]} for name in alternatives]
            exclusive = getattr(self.target, "at_most_one_of", ())
            if exclusive:
                # Null or blank counts as not given, as in the service.
                schema["not"] = {
                    "required": list(exclusive),
                    "properties": {name: {"type": "string", "pattern": NON_BLANK_PATTERN} for name in exclusive},
                }
        return schema


class JSONObjectFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "config.api.serializers.JSONObjectField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = {"type": "object", "additionalProperties": {}}
        if self.target.allow_null:
            schema["nullable"] = True
        if self.target.help_text:
            schema["description"] = str(self.target.help_text)
        return schema


class NonZeroIntegerFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "config.api.serializers.NonZeroIntegerField"

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        schema["not"] = {"enum": [0]}
        return schema


class DateTimeExampleExtension(OpenApiSerializerFieldExtension):
    """A UTCDateTimeField's `example` (evaluated now: a time window around now)."""

    target_class = "config.api.serializers.UTCDateTimeField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        example = self.target.schema_example
        if example is not None and direction == "request":
            value = example() if callable(example) else example
            schema["example"] = value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else value
        return schema


class NonEmptyDictExtension(OpenApiSerializerFieldExtension):
    """A DictField that refuses `{}` says so (`minProperties: 1`)."""

    target_class = serializers.DictField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction == "request" and not getattr(self.target, "allow_empty", True):
            schema["minProperties"] = 1
        return schema


class UniqueItemsExtension(OpenApiSerializerFieldExtension):
    target_class = "config.api.serializers.UniqueItemsListField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        schema["uniqueItems"] = True
        return schema


class NonBlankStringExtension(OpenApiSerializerFieldExtension):
    """A trimmed string that must not be blank has at least one non-space character:
    `minLength: 1` alone would allow "   ", which the server trims to "" and refuses.
    A field with a `schema_pattern` attribute gets that pattern instead."""

    target_class = serializers.CharField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        field = self.target
        if direction == "request" and getattr(field, "schema_pattern", None):
            # A field whose service rule is written as a pattern too (a domain, a URL);
            # "" stays allowed where the field allows blank.
            pattern = field.schema_pattern
            if field.allow_blank and not re.search(pattern, ""):
                pattern = f"^$|(?:{pattern})"
            schema["pattern"] = pattern
        elif (
            direction == "request"
            and not field.allow_blank
            and field.trim_whitespace
            and schema.get("type") == "string"
            and not {"format", "pattern", "enum"} & set(schema)
            and not any(isinstance(v, RegexValidator) for v in field.validators)  # spectacular adds that pattern
        ):
            schema["pattern"] = NON_BLANK_PATTERN
        return schema


# --- The whole schema -----------------------------------------------------------------

_HEADER_REQUEST_ID = {
    "schema": {"type": "string"},
    "description": "The request id (echoed from the request's X-Request-Id when valid).",
}
_HEADER_RETRY_AFTER = {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait before retrying."}
_HEADER_REPLAYED = {
    "schema": {"type": "string", "enum": ["true"]},
    "description": "Present when this answer is the replay of an earlier call with the same idempotency key.",
}
_ALWAYS = (401, 429, 503)
_HTTP_METHODS = ("get", "put", "post", "patch", "delete")


def _takes_idempotency_key(operation: dict, components: dict) -> bool:
    if any(p.get("in") == "header" and p.get("name", "").lower() == "idempotency-key" for p in operation.get("parameters", [])):
        return True
    ref = (
        operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
    )
    body = components.get(ref.rpartition("/")[2], {})
    return "idempotencyKey" in body.get("properties", {})


class AutoSchema(SpectacularAutoSchema):
    """REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]: adds the error answers every call can
    give (401 when the view authenticates, 429, 503) to every operation, and documents
    the body of a DELETE that declares one."""

    def _get_request_body(self, direction="request"):
        # drf-spectacular documents bodies of PUT/PATCH/POST only; a DELETE whose view
        # declares `request=` (the override DELETE's required `reason`, SPEC §4) has one too.
        if self.method != "DELETE" or self._declared_request() is None:
            return super()._get_request_body(direction)
        self.method = "POST"
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"

    def _declared_request(self):
        """The `request=` of the view's extend_schema, without guessing one (the guess
        logs an error for plain APIViews): extend_schema answers it before falling back
        to `_get_serializer`, which answers None here."""
        self._get_serializer = lambda: None
        try:
            return self.get_request_serializer()
        finally:
            del self._get_serializer

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status in _ALWAYS:
            if status == 401 and not self.view.get_authenticators():
                continue
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(error_response(status), str(status), direction=direction)
        return responses


def postprocess_schema(result, generator, request, public):
    """SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]: response headers and servers."""
    components = result.get("components", {}).get("schemas", {})
    for path_item in result.get("paths", {}).values():
        for method in _HTTP_METHODS:
            operation = path_item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            replayable = _takes_idempotency_key(operation, components)
            for status, response in responses.items():
                headers = response.setdefault("headers", {})
                headers.setdefault("X-Request-Id", _HEADER_REQUEST_ID)
                if status in ("429", "503"):
                    headers.setdefault("Retry-After", _HEADER_RETRY_AFTER)
                if replayable and status.startswith("2"):
                    headers.setdefault("Idempotent-Replayed", _HEADER_REPLAYED)
    result.setdefault("servers", [{"url": "/", "description": "This server (paths start with /api/v1/)."}])
    _blank_alternatives_any_of(result)
    return result


_BLANK_STRING = {"type": "string", "maxLength": 0}


def _blank_alternatives_any_of(node) -> None:
    """drf-spectacular writes a blank-allowed, pattern-checked string as
    `oneOf: [{pattern…}, {maxLength: 0}]`; where the pattern itself accepts ""
    both branches match "" and `oneOf` (exactly one) refuses what the server
    accepts. "This or blank" is `anyOf`."""
    if isinstance(node, dict):
        alternatives = node.get("oneOf")
        if isinstance(alternatives, list) and _BLANK_STRING in alternatives:
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _blank_alternatives_any_of(value)
    elif isinstance(node, list):
        for value in node:
            _blank_alternatives_any_of(value)
