"""Read replica routing (SPEC §10 "Scale-out").

With `DATABASE_REPLICA_URL` set, reads that only *show* numbers — statistics,
insights, the admin's list pages — may go to a streaming replica, so that the
primary keeps its capacity for what decides money or access (checks, tracks,
debits, every write and every read inside a write).

The rule is opt-in per unit of work, not per model: the same `UsageEvent`
table is read on the primary by a track and on the replica by a chart. Code
that may tolerate replica lag wraps itself in `read_from_replica()` (or is a
view decorated with `replica_reads`); everything else reads the primary.
Inside an atomic block on the primary, reads stay on the primary.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA_ALIAS = "replica"

_replica_reads: contextvars.ContextVar[bool] = contextvars.ContextVar("replica_reads", default=False)


def replica_enabled() -> bool:
    """True when a replica alias is configured and switched on."""
    return bool(getattr(settings, "READ_REPLICA_ENABLED", False)) and REPLICA_ALIAS in settings.DATABASES


@contextmanager
def read_from_replica() -> Iterator[None]:
    """Within this block, ORM reads go to the replica (when one is configured)."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


def replica_reads(view: Callable) -> Callable:
    """Decorator for views whose reads may lag the primary by a few seconds."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        with read_from_replica():
            return view(*args, **kwargs)

    return wrapped


class ReplicaRouter:
    """Writes always go to the primary; reads go to the replica only inside
    `read_from_replica()` and never while the primary is inside a transaction
    (a read that feeds a write must see that write's own changes)."""

    def db_for_read(self, model, **hints):
        if not _replica_reads.get() or not replica_enabled():
            return DEFAULT_DB_ALIAS
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS
        return REPLICA_ALIAS

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # The replica is a copy of the primary: objects from either relate.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # Migrations run on the primary and reach the replica by replication.
        return db == DEFAULT_DB_ALIAS


class AdminListReplicaMiddleware:
    """The admin's change lists (GET) read from the replica: they count and
    page through big tables, and a few seconds of lag is harmless there.
    Object pages and actions (which change money or access) stay on the primary."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = getattr(request, "resolver_match", None)
        if (
            request.method == "GET"
            and match is not None
            and match.app_name == "admin"
            and (match.url_name or "").endswith("_changelist")
            and replica_enabled()
        ):
            with read_from_replica():
                response = view_func(request, *view_args, **view_kwargs)
                # A TemplateResponse evaluates the change list's querysets while
                # rendering: render here, still inside the replica block.
                if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                    response.render()
                return response
        return None
