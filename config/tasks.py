"""Enqueueing Celery tasks without depending on the broker (SPEC §2 "Degrade,
don't fail"): Redis is a broker, not the source of truth. Every piece of
queued work is first written to PostgreSQL (an outbox row, a pending usage
event, a due delivery) and a periodic beat task picks up whatever is due; the
`.delay()` after commit only makes it happen sooner. So a failed enqueue is
logged (once per outage, not per call) and dropped — never raised into the
request that did the work.

Use `enqueue_on_commit(task, *args)` from services; `enqueue(...)` when
already after the commit."""

from __future__ import annotations

import logging
import threading
import time

from django.db import InterfaceError, OperationalError, transaction

logger = logging.getLogger("saasdesk.tasks")

_state = {"down_since": None}
_lock = threading.Lock()


# The options of a scheduled job: only transient database failures (a lost
# connection, a deadlock, the database restarting) are worth retrying, with backoff;
# a bug would fail the same way five times. `@shared_task(name=…, **DB_JOB_OPTIONS)`.
DB_JOB_OPTIONS = {
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 5,
}


def enqueue(task, *args, countdown: float | None = None, **kwargs) -> bool:
    """Send `task(*args, **kwargs)` to the broker. False (logged once per
    outage) if the broker cannot take it: the periodic pass will do the work."""
    options = {"countdown": max(0.0, countdown)} if countdown is not None else {}
    try:
        # retry=False: with the broker down, fail at once instead of holding
        # the request that committed the work; the periodic pass does it.
        task.apply_async(args=args, kwargs=kwargs, retry=False, **options)
    except Exception as error:  # noqa: BLE001 - any broker failure; the work waits in the database
        with _lock:
            first = _state["down_since"] is None
            if first:
                _state["down_since"] = time.monotonic()
        if first:
            logger.error(
                "broker unreachable: tasks wait in the database for the periodic pass",
                extra={"task": getattr(task, "name", str(task)), "error": f"{error.__class__.__name__}: {error}"[:300]},
            )
        return False
    if _state["down_since"] is not None:
        with _lock:
            if _state["down_since"] is not None:
                logger.warning("broker reachable again", extra={"task": getattr(task, "name", str(task))})
                _state["down_since"] = None
    return True


def enqueue_on_commit(task, *args, countdown: float | None = None, **kwargs) -> None:
    """`enqueue` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: enqueue(task, *args, countdown=countdown, **kwargs))
