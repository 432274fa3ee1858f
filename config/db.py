"""Prepared statements for the few hot statements (the usage track's, the credit debit's).

Django's psycopg backend binds parameters on the client and PostgreSQL
parses and plans every statement again. For a statement that runs on every
request and whose text never changes, planning is much of its cost (measured
on the single track: ~0.3 ms of planning per statement for ~0.1–0.4 ms of
execution). `prepared_cursor()` gives a cursor whose `execute(sql, params)`
prepares `sql` once per database connection (SQL `PREPARE`, named after a
hash of the text, parameter types inferred by PostgreSQL from the statement)
and then runs `EXECUTE name(values…)` through Django's ordinary cursor, so
query logging, `execute_wrapper`s, error wrapping and query counts behave as
usual.

SQL-level `PREPARE` rather than psycopg's own prepared statements on purpose:
psycopg answers every rollback on a connection where it prepared something
with `DEALLOCATE ALL`, which would drop every statement prepared here. A
prepared statement outlives a rolled-back transaction, and PostgreSQL
re-plans it by itself after DDL on the tables it reads.

Use it only for statements with a fixed text (values passed as parameters,
`%s` or `%(name)s`, never formatted into the SQL) that run very often. On
SQLite it is a plain cursor.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from django.db import connection

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


def prepared_form(sql: str, *, types: dict[str, str] | None = None) -> tuple[str, str, tuple[str, ...] | int]:
    """(name, PREPARE statement, parameter order) of `sql`: the named placeholders in
    order of first use, or the number of positional ones. `types` (placeholder name →
    SQL type) declares the parameter types where PostgreSQL cannot infer them. The name
    carries a hash of the text, so a changed statement is prepared anew."""
    return _prepared_form(sql, tuple(sorted((types or {}).items())))


@lru_cache(maxsize=64)
def _prepared_form(sql: str, types: tuple[tuple[str, str], ...]) -> tuple[str, str, tuple[str, ...] | int]:
    names: list[str] = []
    positional = 0

    def number(match: re.Match) -> str:
        nonlocal positional
        if match.group(0) == "%%":
            return "%"
        if match.group(1) is None:
            positional += 1
            return f"${positional}"
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    body = _PLACEHOLDER.sub(number, sql)
    if names and positional:
        raise ValueError("a prepared statement takes named or positional parameters, not both")
    declared = dict(types)
    signature = f" ({', '.join(declared[name] for name in names)})" if declared and names else ""
    name = "sd_" + hashlib.sha1((sql + repr(types)).encode()).hexdigest()[:20]
    return name, f"PREPARE {name}{signature} AS {body}", tuple(names) if names else positional


def execute_form(name: str, order: tuple[str, ...]) -> str:
    """`EXECUTE name (%(a)s, …)`: the text that runs a prepared statement with named
    parameters, to send with a params dict (also several, `;`-separated, in one message)."""
    return f"EXECUTE {name} ({', '.join(f'%({key})s' for key in order)})" if order else f"EXECUTE {name}"


class PreparedCursor:
    """A Django cursor whose `execute` runs prepared statements."""

    def __init__(self, cursor) -> None:
        self.cursor = cursor

    def __getattr__(self, attr):
        return getattr(self.cursor, attr)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.cursor.close()

    def execute(self, sql: str, params=None):
        name, prepare, order = prepared_form(sql)
        ensure_prepared(self.cursor, [(name, prepare)])
        if isinstance(order, tuple):
            values = [params[key] for key in order]
        else:
            values = list(params or ())
            if len(values) != order:
                raise ValueError(f"{order} parameters expected, {len(values)} given")
        placeholders = ", ".join(["%s"] * len(values))
        return self.cursor.execute(f"EXECUTE {name}({placeholders})" if values else f"EXECUTE {name}", values)


def ensure_prepared(cursor, statements) -> None:
    """PREPARE each (name, PREPARE statement) on this connection unless it has it
    (known names are remembered per underlying connection; a connection unknown to
    us, e.g. after a reconnect, is asked once)."""
    raw = connection.connection
    state = getattr(connection, "_sd_prepared", None)
    if state is None or state[0] is not raw:
        state = (raw, set())
        connection._sd_prepared = state
    missing = [(name, prepare) for name, prepare in statements if name not in state[1]]
    if not missing:
        return
    cursor.execute("SELECT name FROM pg_prepared_statements WHERE name = ANY(%s)", [[name for name, _ in missing]])
    present = {name for (name,) in cursor.fetchall()}
    for name, prepare in missing:
        if name not in present:
            cursor.execute(prepare)
        state[1].add(name)


def prepared_cursor():
    """A cursor of the default connection whose statements are prepared once
    per connection (PostgreSQL): `with prepared_cursor() as cursor:
    cursor.execute(sql, params)`."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    return PreparedCursor(connection.cursor())
