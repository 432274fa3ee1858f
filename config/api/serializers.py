"""Building blocks for the camelCase API serializers of every app.

Field names are written in camelCase in the serializers themselves (with
`source=` pointing at the snake_case model/service name), so there is no
magic key conversion that could also rewrite the keys of a customer's
`metadata` or a feature's `config`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django.http import QueryDict
from rest_framework import serializers

MAX_JSON_BYTES = 16 * 1024
MAX_BIGINT = 2**63 - 1


class StrictSerializer(serializers.Serializer):
    """Rejects unknown fields: a typo such as `quantiy` must be a 400, not a
    silently ignored value (the same choice Stripe's API makes)."""

    def to_internal_value(self, data):
        if isinstance(data, QueryDict):
            data = self._query_values(data)
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)

    def _query_values(self, query: QueryDict) -> dict:
        # A query string is read like a JSON body: `?limit=` is an empty value
        # (refused where the schema refuses ""), not an absent one as DRF's
        # HTML-form handling would make it.
        return {
            key: query.getlist(key) if isinstance(self.fields.get(key), serializers.ListField) else query[key]
            for key in query
        }


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class JSONObjectField(serializers.JSONField):
    """A JSON object (dict) of bounded size without NUL characters, which
    PostgreSQL's jsonb cannot store."""

    default_error_messages = {
        "not_object": "Must be a JSON object.",
        "too_large": f"Must be at most {MAX_JSON_BYTES} bytes as JSON.",
        "nul": "Must not contain NUL characters.",
    }

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if not isinstance(data, dict):
            self.fail("not_object")
        if _has_nul(data):
            self.fail("nul")
        if len(json.dumps(data)) > MAX_JSON_BYTES:
            self.fail("too_large")
        return data


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON integer: `1.5`, `"3"`, `true`
    and values beyond 64 bits are rejected rather than coerced."""

    default_error_messages = {"not_integer": "Must be a whole number (JSON integer)."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_value", MAX_BIGINT)
        kwargs.setdefault("min_value", -MAX_BIGINT)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_integer")
        return super().to_internal_value(data)


class NonZeroIntegerField(StrictIntegerField):
    """A StrictIntegerField that refuses 0 (a correction by nothing is a mistake)."""

    default_error_messages = {"zero": "Must not be zero."}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value == 0:
            self.fail("zero")
        return value


class StrictBooleanField(serializers.BooleanField):
    """true/false as JSON booleans only: "yes", 1 and "false" are 400s."""

    default_error_messages = {"invalid": "Must be a JSON boolean (true or false)."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictFloatField(serializers.FloatField):
    """A JSON number (not a string, not a boolean)."""

    default_error_messages = {"invalid": "Must be a JSON number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class _StringOnly:
    """DRF turns 12 or true into "12"/"True"; a wrong JSON type is a 400."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.", code="invalid")
        return super().to_internal_value(data)


class StrictCharField(_StringOnly, serializers.CharField):
    pass


class StrictEmailField(_StringOnly, serializers.EmailField):
    pass


class StrictURLField(_StringOnly, serializers.URLField):
    pass


class StrictUUIDField(_StringOnly, serializers.UUIDField):
    pass


class UTCDateTimeField(serializers.DateTimeField):
    """ISO 8601 in; ISO 8601 UTC with `Z` out. A time without offset is UTC."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default_timezone", UTC)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return iso_utc(value)


def iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
