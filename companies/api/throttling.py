"""Per-key rate limit with a fixed one-window counter in the cache (Redis when
REDIS_URL is set, so every worker process shares it): one round trip per
request. DRF's own throttles keep a list of every request time in the cache,
which is too slow at the rates the benchmarks run."""

from __future__ import annotations

import time

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from config.cache import counter_incr

from ..api_keys import ApiPrincipal

_PERIODS = {"second": 1, "sec": 1, "s": 1, "minute": 60, "min": 60, "m": 60, "hour": 3600, "h": 3600}


def parse_rate(rate: str) -> tuple[int, int]:
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip().lower()]


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        principal = request.auth
        if not isinstance(principal, ApiPrincipal):
            return True
        limit, window = parse_rate(settings.API_RATE_LIMIT)
        now = time.time()
        window_start = int(now // window) * window
        count = counter_incr(f"throttle:{principal.key_id}:{window_start}", window + 1)
        self._wait = window_start + window - now
        return count <= limit

    def wait(self):
        return self._wait
