"""Building blocks for the camelCase API serializers of every app.

Field names are written in camelCase in the serializers themselves (with
`source=` pointing at the snake_case model/service name), so there is no
magic key conversion that could also rewrite the keys of a customer's
`metadata` or a feature's `config`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

from django.http import QueryDict
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

MAX_JSON_BYTES = 16 * 1024
MAX_BIGINT = 2**63 - 1


def string_input_error(value) -> str | None:
    """Why `value` is not acceptable JSON text input, or None. DRF would turn
    12 or true into "12"/"True" (and an integer into a UUID); a string with a
    lone surrogate cannot be stored or even encoded as UTF-8."""
    if not isinstance(value, str):
        return "Must be a string."
    if not _is_utf8(value):
        return "Must be valid Unicode text (no unpaired surrogates)."
    return None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _takes_json_string(field: serializers.Field) -> bool:
    """Fields whose JSON input is a string and nothing else."""
    if isinstance(field, (serializers.CharField, serializers.UUIDField, serializers.DateTimeField,
                          serializers.DateField)):
        return True
    if isinstance(field, serializers.ChoiceField) and not isinstance(field, serializers.MultipleChoiceField):
        return all(isinstance(choice, str) for choice in field.choices)
    return False


def _checks_children(child: serializers.Field) -> bool:
    return _takes_json_string(child) or isinstance(child, (serializers.ListField, serializers.DictField))


def _json_type_errors(field: serializers.Field, value) -> list[str] | dict | None:
    """Type errors of one input value, in DRF's error shape; None when fine.
    Nested serializers check themselves; list and dict children are checked
    here, so `emails: [1, 2]` is refused too."""
    if value is None:
        return None
    if _takes_json_string(field):
        message = string_input_error(value)
        return [message] if message else None
    if isinstance(field, (serializers.ListField, serializers.DictField)) and not _checks_children(field.child):
        return None
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        errors = {index: err for index, item in enumerate(value) if (err := _json_type_errors(field.child, item))}
        return errors or None
    if isinstance(field, serializers.DictField) and isinstance(value, dict):
        errors = {key: err for key, item in value.items() if (err := _json_type_errors(field.child, item))}
        return errors or None
    return None


class StrictSerializer(serializers.Serializer):
    """The base of every input serializer:
    - unknown fields are rejected: a typo such as `quantiy` must be a 400, not
      a silently ignored value (the same choice Stripe's API makes);
    - string-typed fields (text, UUIDs, dates, string choices) take JSON
      strings only: `reason: 123` or an integer `companyId` is a 400 naming
      the field, whatever field class a serializer declares."""

    # Field names of which a body must give exactly one (e.g. companyId or
    # externalOrgId); the OpenAPI schema says it with a oneOf (config.api.schema).
    exactly_one_of: tuple[str, ...] = ()

    def validate(self, attrs):
        if self.exactly_one_of:
            given = [name for name in self.exactly_one_of if self.fields[name].source in attrs]
            if len(given) != 1:
                message = f"Give exactly one of {' and '.join(self.exactly_one_of)}."
                raise serializers.ValidationError({name: [message] for name in self.exactly_one_of})
        return attrs

    def to_internal_value(self, data):
        data = strict_input(self, data)
        if isinstance(data, dict):
            type_errors = {}
            for name, field in self.fields.items():
                if name in data and not field.read_only and (error := _json_type_errors(field, data[name])):
                    type_errors[name] = error
            if type_errors:
                raise serializers.ValidationError(type_errors)
        return super().to_internal_value(data)



def strict_input(serializer: serializers.Serializer, data):
    """`data` with unknown fields refused (a 400 naming them). A query string
    is read like a JSON body: `?limit=` is an empty value (refused where the
    schema refuses ""), not an absent one as DRF's HTML-form handling makes it."""
    if isinstance(data, QueryDict):
        data = {
            key: data.getlist(key) if isinstance(serializer.fields.get(key), serializers.ListField) else data[key]
            for key in data
        }
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(serializer.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
    return data


def _unstorable_text(value) -> str | None:
    """"nul" or "surrogate" if a string anywhere in `value` (keys included)
    cannot be stored in PostgreSQL's jsonb; iterative (bodies nest at most
    MAX_JSON_DEPTH levels anyway)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return "nul"
            if not _is_utf8(node):
                return "surrogate"
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


class JSONObjectField(serializers.JSONField):
    """A JSON object (dict) of bounded size without NUL characters, which
    PostgreSQL's jsonb cannot store."""

    default_error_messages = {
        "not_object": "Must be a JSON object.",
        "too_large": f"Must be at most {MAX_JSON_BYTES} bytes as JSON.",
        "nul": "Must not contain NUL characters.",
        "surrogate": "Must be valid Unicode text (no unpaired surrogates).",
    }

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if not isinstance(data, dict):
            self.fail("not_object")
        if problem := _unstorable_text(data):
            self.fail(problem)
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
    """A StrictIntegerField whose service refuses 0 (a correction by nothing):
    the rule stays in the service; this class only puts `not: 0` in the schema."""


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
    """DRF turns 12 or true into "12"/"True"; a wrong JSON type is a 400
    (also outside a StrictSerializer, e.g. in query serializers)."""

    def to_internal_value(self, data):
        if message := string_input_error(data):
            raise serializers.ValidationError(message, code="invalid")
        return super().to_internal_value(data)


class StrictCharField(_StringOnly, serializers.CharField):
    pass


class StrictEmailField(_StringOnly, serializers.EmailField):
    pass


# What Django's URLValidator accepts, as an OpenAPI `pattern` (a little narrower:
# http(s) only, 2–4 labels of host name, at most 220 characters of host, no IP
# literals), so that the schema never allows a URL the server refuses.
HTTP_URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,48}[A-Za-z0-9])?\.){1,3}[A-Za-z]{2,20}"
    r"(?::[0-9]{1,4})?(?:[/?#][!-~]{0,200})?$"
)


class UniqueItemsListField(serializers.ListField):
    """A list whose items must differ (the OpenAPI schema says `uniqueItems`); the
    service owns the finer rule (e.g. emails unique ignoring case)."""


class StrictURLField(_StringOnly, serializers.URLField):
    schema_pattern = HTTP_URL_PATTERN  # config.api.schema puts it in the OpenAPI schema


class StrictUUIDField(_StringOnly, serializers.UUIDField):
    pass


class UTCDateTimeField(serializers.DateTimeField):
    """ISO 8601 in; ISO 8601 UTC with `Z` out. A time without offset is UTC.
    `example` (a callable, called when the schema is built, e.g. "a minute
    ago" for a field that must lie in a window around now) is the schema's
    example of a value the server accepts."""

    def __init__(self, *, example=None, **kwargs):
        kwargs.setdefault("default_timezone", UTC)
        self.schema_example = example
        super().__init__(**kwargs)

    def to_representation(self, value):
        return iso_utc(value)


class UTCDateOrDateTimeField(UTCDateTimeField):
    """A query bound (SPEC §2 "Units and time"): an ISO date (its UTC
    midnight) or an ISO datetime, as an aware UTC datetime."""

    def to_internal_value(self, value):
        if isinstance(value, str) and len(value) == 10:
            try:
                day = date.fromisoformat(value)
            except ValueError:
                pass
            else:
                return datetime(day.year, day.month, day.day, tzinfo=UTC)
        return super().to_internal_value(value).astimezone(UTC)


def iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class PlainInputFastPathMixin:
    """For serializers on hot paths (a usage batch validates up to 1000
    items): input made only of plain JSON values that the declared fields
    accept is validated without DRF's per-field machinery — its type checked
    the way the field's class checks it, then the field's own validators
    (max length, min/max value, no NUL), its `validate_<field>`, its default,
    and the serializer's own `validate()`. Anything else (a field type not
    listed here, a null, a value any check refuses) goes through the normal
    validation, which owns every error message. The rules therefore stay
    declared once, on the fields; tests/metering/test_api.py checks that both
    paths agree. Use one unbound instance for many inputs: the plan of its
    fields is worked out once."""

    def run_validation(self, data=serializers.empty):
        attrs = self._plain_attrs(data)
        if attrs is not None:
            try:
                return self.validate(attrs)
            except serializers.ValidationError:
                pass
        return super().run_validation(data)

    def _fast_plan(self):
        plan = self.__dict__.get("_fast_plan_cache")
        if plan is None:
            steps = []
            for name, field in self.fields.items():
                if field.read_only:
                    continue
                kind = _PLAIN_KINDS.get(type(field)) if "." not in field.source and field.source != "*" else None
                steps.append(
                    (
                        name,
                        field.source,
                        kind,
                        field.required,
                        field.default,
                        # `_plain_text`/`_plain_uuid` already refuse what DRF's
                        # surrogate validator would (a character loop in Python).
                        tuple(v for v in field.validators if not isinstance(v, ProhibitSurrogateCharactersValidator))
                        if kind in (_plain_text, _plain_uuid) else tuple(field.validators),
                        getattr(self, f"validate_{name}", None),
                    )
                )
            usable = not self.validators
            plan = self.__dict__["_fast_plan_cache"] = (usable, frozenset(self.fields), tuple(steps))
        return plan

    def _plain_attrs(self, data) -> dict | None:
        if type(data) is not dict:
            return None
        usable, names, steps = self._fast_plan()
        if not usable or not data.keys() <= names:
            return None
        attrs = {}
        for name, source, kind, required, default, validators, field_validate in steps:
            if name not in data:
                if required:
                    return None
                if default is not serializers.empty:
                    attrs[source] = default() if callable(default) else default
                continue
            if kind is None:
                return None
            value = kind(data[name])
            if value is _REFUSED:
                return None
            try:
                for validator in validators:
                    validator(value)
                if field_validate is not None:
                    value = field_validate(value)
            except Exception:  # noqa: BLE001 - the full validation words the error
                return None
            attrs[source] = value
        return attrs


_REFUSED = object()


def _plain_integer(value):
    return value if type(value) is int else _REFUSED


def _plain_text(value):
    # CharField trims whitespace and refuses blanks by default (the plan only
    # uses this for fields with those defaults): only values they leave
    # unchanged are plain.
    if type(value) is not str or not value or value != value.strip() or string_input_error(value) is not None:
        return _REFUSED
    return value


def _plain_uuid(value):
    if type(value) is not str or string_input_error(value) is not None:
        return _REFUSED
    try:
        return uuid.UUID(value)
    except ValueError:
        return _REFUSED


# Field classes the fast path understands, and how it reads their input.
_PLAIN_KINDS = {
    StrictIntegerField: _plain_integer,
    serializers.CharField: _plain_text,
    StrictCharField: _plain_text,
    serializers.UUIDField: _plain_uuid,
    StrictUUIDField: _plain_uuid,
}
