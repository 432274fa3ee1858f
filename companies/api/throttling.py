"""Rate limits of the API, each a fixed one-window counter:

- per key (`API_RATE_LIMIT`), on every authenticated request;
- per client address for failed authentication (`API_AUTH_FAILURE_RATE`):
  an address that keeps presenting unknown or revoked credentials is refused
  with a 429 *before* any lookup, so a flood of random keys costs neither a
  database read nor a cache entry per key (SPEC §2).

Counters live in the cache (Redis when REDIS_URL is set, so every worker
process shares them): one round trip per request. DRF's own throttles keep a
list of every request time in the cache, which is too slow at the rates the
benchmarks run. While Redis is down the per-key counters move to PostgreSQL
(`RateLimitCounter`, one upsert); the failure counters stay in process memory
instead, because unknown keys must not cost a write."""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

from config.cache import CacheUnavailable, counter_incr

from ..api_keys import ApiPrincipal

_PERIODS = {"second": 1, "sec": 1, "s": 1, "minute": 60, "min": 60, "m": 60, "hour": 3600, "h": 3600}
# The PostgreSQL fallback prunes expired counters on about one call in this many.
_PRUNE_ONE_IN = 200


def parse_rate(rate: str) -> tuple[int, int]:
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip().lower()]


@dataclass(frozen=True)
class Window:
    limit: int
    key: str  # the counter's key for the current window
    ttl: int
    wait: float  # seconds until the window ends

    @classmethod
    def current(cls, rate: str, subject: str) -> Window:
        limit, seconds = parse_rate(rate)
        now = time.time()
        start = int(now // seconds) * seconds
        return cls(limit, f"{subject}:{start}", seconds + 1, start + seconds - now)


def _database_counter_incr(key: str, ttl_seconds: int) -> int:
    """The counter in PostgreSQL/SQLite: one atomic upsert."""
    from ..models import RateLimitCounter

    table = connection.ops.quote_name(RateLimitCounter._meta.db_table)
    now = timezone.now()
    with connection.cursor() as cursor:
        if random.randrange(_PRUNE_ONE_IN) == 0:
            cursor.execute(f"DELETE FROM {table} WHERE expires_at < %s", [now])
        cursor.execute(
            f"INSERT INTO {table} (key, count, expires_at) VALUES (%s, 1, %s) "
            f"ON CONFLICT (key) DO UPDATE SET count = {table}.count + 1 RETURNING count",
            [key, now + timedelta(seconds=ttl_seconds)],
        )
        return int(cursor.fetchone()[0])


def rate_counter_incr(key: str, ttl_seconds: int) -> int:
    """Shared windowed counter: Redis, or PostgreSQL while Redis is down."""
    try:
        return counter_incr(key, ttl_seconds)
    except CacheUnavailable:
        return _database_counter_incr(key, ttl_seconds)


def key_rate_window(subject: str) -> Window:
    """The current `API_RATE_LIMIT` window of one credential (`subject`: an
    API key's hash prefix, a service credential's id)."""
    return Window.current(settings.API_RATE_LIMIT, f"throttle:{subject}")


def remember_rate_count(request, window: Window, count: int | None) -> None:
    """Authentication's part of the rate limit: the credential's window and,
    when the key lookup counted it in the same round trip, the new count."""
    request.rate_counted = (window, count)


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        principal = request.auth
        if not isinstance(principal, ApiPrincipal):
            return True
        window, count = getattr(request, "rate_counted", None) or (key_rate_window(str(principal.key_id)), None)
        self._wait = window.wait
        if count is None:
            count = rate_counter_incr(window.key, window.ttl)
        return count <= window.limit

    def wait(self):
        return self._wait


# --- failed authentication, per client address -------------------------------------------


def client_ip(request) -> str | None:
    """The caller's IP as DRF's throttles see it: REMOTE_ADDR, or the
    X-Forwarded-For entry NUM_PROXIES hops back; None if there is none (e.g.
    the test client's force_login). Also django-axes' AXES_CLIENT_IP_CALLABLE,
    so the admin lockout and the API throttles agree on who the client is."""
    if getattr(request, "META", None) is None:
        return None
    ident = (BaseThrottle().get_ident(request) or "").strip()
    try:
        return str(ipaddress.ip_address(ident))
    except ValueError:
        return None


def client_address(request) -> str:
    """The throttled unit: the client IP, IPv6 reduced to its /64 (one host
    can change its low 64 bits at will)."""
    ip = client_ip(request)
    if ip is None:
        return "unknown"
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        return ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address) + "/64"


class _LocalCounters:
    """In-process fallback for the failure counters while Redis is down."""

    MAX_ENTRIES = 10_000

    def __init__(self):
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def incr(self, key: str) -> int:
        with self._lock:
            if len(self._counts) >= self.MAX_ENTRIES:
                self._counts.clear()  # old windows; bounded memory beats exact counts here
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]


class _BlockedAddresses:
    """Addresses over their failure limit, known to this process until their
    window ends. Checking it costs no round trip, so valid requests pay
    nothing for the failure throttle; another process learns of the block at
    its own next failure of that address (the shared counter is over the
    limit), so an address gets at most one extra lookup per process."""

    MAX_ENTRIES = 10_000

    def __init__(self):
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._until)

    def wait(self, address: str) -> float:
        until = self._until.get(address)
        if until is None:
            return 0.0
        left = until - time.time()
        if left <= 0:
            self._until.pop(address, None)  # over: valid requests skip the address again
        return left

    def block(self, address: str, seconds: float) -> None:
        with self._lock:
            if len(self._until) >= self.MAX_ENTRIES:
                now = time.time()
                self._until = {a: u for a, u in self._until.items() if u > now}
                if len(self._until) >= self.MAX_ENTRIES:
                    self._until.clear()
            self._until[address] = time.time() + seconds


_local_failures = _LocalCounters()
_blocked = _BlockedAddresses()


def refuse_flooding_address(request) -> None:
    """429 if the caller's address has failed authentication too often in the
    current window: no lookup is made for it."""
    if not _blocked:
        return  # nothing blocked in this process: no address to work out
    wait = _blocked.wait(client_address(request))
    if wait > 0:
        raise Throttled(wait=wait)


def record_auth_failure(request) -> None:
    """Count a failed authentication of the caller's address (in the cache,
    in process memory while it is down: an unknown key costs no write)."""
    address = client_address(request)
    window = Window.current(settings.API_AUTH_FAILURE_RATE, f"authfail:{address}")
    try:
        failures = counter_incr(window.key, window.ttl)
    except CacheUnavailable:
        failures = _local_failures.incr(window.key)
    if failures >= window.limit:
        _blocked.block(address, window.wait)
