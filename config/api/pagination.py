"""The one list shape of SPEC §2, for every list endpoint of every app:

    {"data": [...], "hasMore": bool, "nextCursor": str | null}

with `limit` (default 50, max 500) and an opaque `cursor` in the query.

Pagination is **keyset** (seek) pagination: the cursor carries the ordering
values of the last item of the page, and the next page is "the rows after
it" in the queryset's own `order_by()`. Unlike offsets, a page never skips or
repeats a row when rows are added meanwhile, and page 1000 costs what page 1
costs. The ordering must be total: the primary key is appended when the
queryset's ordering does not end with it.

Use in a view:

    query = validated(UsageHistoryQuerySerializer, request.query_params)  # a PageQuerySerializer
    page = paginate(selectors.usage_history_list(...), limit=query["limit"], cursor=query["cursor"])
    return page_response(page, UsageEventSerializer)

and in its schema `responses={200: page_of(UsageEventSerializer)}`. Lists
computed in memory (small and already sorted, e.g. a product's feature
checks) use `paginate_sequence(items, key=...)`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from rest_framework import serializers
from rest_framework.response import Response

from config.api.parsers import json_loads
from config.api.serializers import strict_input
from config.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 1000


@dataclass(frozen=True)
class Page:
    items: list
    has_more: bool
    next_cursor: str | None


class _CursorField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)  # `?cursor=` is the first page
        kwargs.setdefault("max_length", MAX_CURSOR_LENGTH)
        kwargs.setdefault("help_text", "Opaque: the `nextCursor` of the previous page (empty or absent: the first page).")
        super().__init__(**kwargs)


class PageQuerySerializer(serializers.Serializer):
    """`limit` and `cursor` of a list's query string. Subclass it for a list's
    own filters (or use it as is; combining it with StrictSerializer is fine).
    Unknown query parameters are a 400, like unknown body fields."""

    def to_internal_value(self, data):
        return super().to_internal_value(strict_input(self, data))


    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT,
        help_text=f"Page size (default {DEFAULT_LIMIT}, max {MAX_LIMIT}).",
    )
    cursor = _CursorField()


# --- Cursor encoding ----------------------------------------------------------------


def _bad_cursor() -> BadRequest:
    return BadRequest.for_field("cursor", "Invalid cursor: pass the nextCursor of the previous page unchanged.")


# For lists that page by hand (e.g. aggregated statistics) with encode/decode_cursor.
bad_cursor = _bad_cursor


def _fingerprint(ordering: Sequence[str]) -> str:
    # Ties a cursor to the list it came from: another list's cursor is a 400,
    # not a page of something unexpected.
    return hashlib.blake2s("|".join(ordering).encode(), digest_size=4).hexdigest()


def _jsonable(value: Any):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def encode_cursor(values: Sequence[Any], ordering: Sequence[str]) -> str:
    raw = json.dumps([_fingerprint(ordering), [_jsonable(v) for v in values]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, ordering: Sequence[str]) -> list:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fingerprint, values = json_loads(raw)  # depth-bounded: a cursor is caller input
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise _bad_cursor() from None
    if fingerprint != _fingerprint(ordering) or not isinstance(values, list) or len(values) != len(ordering):
        raise _bad_cursor()
    return values


# --- QuerySets ----------------------------------------------------------------------


def _ordering(queryset: QuerySet) -> list[str]:
    ordering = list(queryset.query.order_by) or list(queryset.model._meta.ordering)
    if not ordering or not all(isinstance(term, str) for term in ordering):
        raise TypeError("paginate() needs a queryset ordered by plain field names.")
    names = [term.lstrip("-") for term in ordering]
    if not ({"pk", "id", queryset.model._meta.pk.name} & set(names)):
        ordering.append("-pk" if ordering[-1].startswith("-") else "pk")
    return ordering


def _field(queryset: QuerySet, name: str):
    model = queryset.model
    *relations, last = name.split("__")
    for relation in relations:
        model = model._meta.get_field(relation).related_model
    return model._meta.pk if last == "pk" else model._meta.get_field(last)


def _after(ordering: Sequence[str], values: Sequence[Any]) -> Q:
    """Rows strictly after `values` in `ordering`: (a > x) | (a = x & b > y) | …"""
    condition = Q()
    for position, term in enumerate(ordering):
        name = term.lstrip("-")
        lookup = "lt" if term.startswith("-") else "gt"
        step = Q(**{f"{name}__{lookup}": values[position]})
        for previous, value in zip(ordering[:position], values[:position], strict=True):
            step &= Q(**{previous.lstrip("-"): value})
        condition |= step
    return condition


def paginate(queryset: QuerySet, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page:
    """One page of `queryset` in its own ordering (which must name fields that
    are never NULL), after `cursor`. One query of `limit + 1` rows."""
    ordering = _ordering(queryset)
    limit = max(1, min(int(limit), MAX_LIMIT))
    if cursor:
        raw_values = decode_cursor(cursor, ordering)
        try:
            values = [_field(queryset, term.lstrip("-")).to_python(v) for term, v in zip(ordering, raw_values, strict=True)]
        except (DjangoValidationError, TypeError, ValueError):
            raise _bad_cursor() from None
        queryset = queryset.filter(_after(ordering, values))
    rows = list(queryset.order_by(*ordering)[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more:
        next_cursor = encode_cursor([_value(rows[-1], term.lstrip("-")) for term in ordering], ordering)
    return Page(items=rows, has_more=has_more, next_cursor=next_cursor)


def _value(row, name: str):
    for attribute in name.split("__"):
        row = getattr(row, attribute)
    return row


def paginate_sequence(
    items: Sequence, *, key: Callable[[Any], str], limit: int = DEFAULT_LIMIT, cursor: str | None = None, name: str = "key"
) -> Page:
    """A page of an in-memory list sorted by a unique string `key` ascending."""
    ordering = [f"seq:{name}"]
    limit = max(1, min(int(limit), MAX_LIMIT))
    if cursor:
        (after,) = decode_cursor(cursor, ordering)
        if not isinstance(after, str):
            raise _bad_cursor()
        items = [item for item in items if key(item) > after]
    page = list(items[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]
    return Page(items=page, has_more=has_more, next_cursor=encode_cursor([key(page[-1])], ordering) if has_more else None)


# --- Responses ----------------------------------------------------------------------


def page_data(page: Page, items: list) -> dict:
    return {"data": items, "hasMore": page.has_more, "nextCursor": page.next_cursor}


def page_response(page: Page, item_serializer: type[serializers.Serializer] | Callable[[Any], dict]) -> Response:
    """The list shape with each item through `item_serializer` (a serializer
    class, or a function item → dict for hot paths)."""
    if isinstance(item_serializer, type) and issubclass(item_serializer, serializers.BaseSerializer):
        items = item_serializer(page.items, many=True).data
    else:
        items = [item_serializer(item) for item in page.items]
    return Response(page_data(page, items))


_PAGE_SERIALIZERS: dict[type, type] = {}


def page_of(item_serializer: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The OpenAPI shape of a page of `item_serializer` items (component
    `<Item>Page`). Documentation only."""
    if item_serializer not in _PAGE_SERIALIZERS:
        name = item_serializer.__name__.removesuffix("Serializer")
        _PAGE_SERIALIZERS[item_serializer] = type(
            f"{name}PageSerializer",
            (serializers.Serializer,),
            {
                "__module__": __name__,
                "__doc__": f"A page of {name} items (SPEC §2 list shape).",
                "data": item_serializer(many=True),
                "hasMore": serializers.BooleanField(help_text="true when there are more items after this page"),
                "nextCursor": serializers.CharField(
                    allow_null=True, help_text="Pass as `cursor` to get the next page; null on the last page."
                ),
            },
        )
    return _PAGE_SERIALIZERS[item_serializer]
