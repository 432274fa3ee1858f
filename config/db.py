"""Prepared statements for the few hot statements (the usage track's).

Django's psycopg backend binds parameters on the client: every execution
sends the full SQL text with the values quoted into it, and PostgreSQL
parses and plans it again. For a statement that runs on every request and
whose text never changes, that is most of its cost on both sides (measured
on the single track: ~0.3 ms of planning per statement, and the quoting of a
JSON parameter in Python). `prepared_cursor()` gives a Django cursor (query
logging, `execute_wrapper`s, error wrapping and query counts behave as
usual) whose statements are sent with server-side parameters and prepared
once per connection: later executions send only the statement's name and the
values.

Use it only for statements with a fixed text (no values formatted into the
SQL) that run very often; PostgreSQL keeps each prepared statement for the
life of the connection. On SQLite it is a plain cursor.
"""

from __future__ import annotations

from django.db import connection


def _prepared_cursor_class():
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparedCursor(ServerBindingCursor):
        def execute(self, query, params=None, *, prepare=True, binary=None):
            return super().execute(query, params, prepare=prepare, binary=binary)

    return PreparedCursor


_PreparedCursor = None


def prepared_cursor():
    """A cursor of the default connection whose statements are prepared
    (PostgreSQL); `with prepared_cursor() as cursor: cursor.execute(sql, params)`."""
    global _PreparedCursor
    if connection.vendor != "postgresql":
        return connection.cursor()
    if _PreparedCursor is None:
        _PreparedCursor = _prepared_cursor_class()
    # What `connection.cursor()` does, with our cursor class.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django connects with automatic preparation off (its client-side
        # cursors never prepare); explicit `prepare=True` needs it on.
        # Only cursors from here ask for it.
        raw.prepare_threshold = 2**31 - 1
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_PreparedCursor(raw))
