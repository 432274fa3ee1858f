"""The one JSON parser of the API (DRF's DEFAULT_PARSER_CLASSES) and of the
Stripe webhook: DRF's strict JSON (no NaN/Infinity), plus a nesting limit.

Python's json module recurses once per level, so `[[[[…]]]]` a hundred
thousand levels deep raises RecursionError — a 500 with a traceback. Every
body is therefore refused with a 400 past MAX_JSON_DEPTH levels; no legitimate
request (metadata and feature configs included) nests that deep."""

from __future__ import annotations

import codecs
import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework import parsers
from rest_framework.utils.json import strict_constant

MAX_JSON_DEPTH = 32
_TOO_DEEP = f"JSON is nested deeper than {MAX_JSON_DEPTH} levels."


def _nesting_exceeds(data: Any, limit: int) -> bool:
    """Whether `data` nests objects/arrays deeper than `limit`; iterative, so
    the check itself cannot run out of stack."""
    if type(data) is not dict and type(data) is not list:
        return False
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


def json_loads(text: str | bytes) -> Any:
    """Parse JSON text; ValueError (with a message fit for the caller) for
    malformed, non-compliant or too deeply nested input."""
    try:
        data = json.loads(text, parse_constant=strict_constant)
    except RecursionError:
        raise ValueError(_TOO_DEEP) from None
    # Nesting needs an opening bracket per level: counting them (in C) spares
    # the walk for the common small body.
    openers = text.count("[") + text.count("{") if isinstance(text, str) else text.count(b"[") + text.count(b"{")
    if openers > MAX_JSON_DEPTH and _nesting_exceeds(data, MAX_JSON_DEPTH):
        raise ValueError(_TOO_DEEP)
    return data


class BoundedJSONParser(parsers.JSONParser):
    """DRF's JSONParser with the nesting limit above."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            return json_loads(text)
        except ValueError as exc:  # UnicodeDecodeError included
            raise ParseError(f"JSON parse error - {exc}") from None
