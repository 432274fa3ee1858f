"""Unknown keys are not free to flood (issue 8 item 6): failed authentication
is throttled per client address (429 + Retry-After), a flood of random keys
costs no database write and no cache entry per key, and valid keys from other
addresses are not affected."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from companies.api.throttling import client_address
from companies.api_keys import generate_key
from tests.platform.test_envelope import _error

pytestmark = pytest.mark.django_db


def _stranger(address: str = "203.0.113.7") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    return client


def _get_with_key(client: APIClient, key: str):
    return client.get("/api/v1/tiers", HTTP_AUTHORIZATION=f"Bearer {key}")


def _cache_keys() -> int | None:
    """Number of keys in this test's Redis namespace (None on a local-memory cache)."""
    backend = cache._cache if hasattr(cache, "_cache") else None
    if backend is None or not hasattr(backend, "get_client"):
        return len(getattr(cache, "_cache", {}))
    client = backend.get_client()
    return sum(1 for _ in client.scan_iter(match=f"{cache.key_prefix}*"))


@override_settings(API_AUTH_FAILURE_RATE="5/hour")
def test_an_address_that_keeps_failing_gets_429_then_no_lookup(api):
    stranger = _stranger()
    for _ in range(5):
        _error(_get_with_key(stranger, generate_key()), 401, "UNAUTHORIZED")
    with CaptureQueriesContext(connection) as queries:
        response = _get_with_key(stranger, generate_key())
    error = _error(response, 429, "TOO_MANY_REQUESTS")
    assert int(response["Retry-After"]) >= 1 and error["details"]["retryAfter"] == int(response["Retry-After"])
    assert len(queries) == 0, "a throttled address costs no database query"
    # Even a valid key from that address waits: the address is what is throttled.
    assert _error(stranger.get("/api/v1/tiers", HTTP_AUTHORIZATION=f"Bearer {api.raw_key}"), 429, "TOO_MANY_REQUESTS")
    # Another address, and the product's own client, are unaffected.
    assert _get_with_key(_stranger("198.51.100.9"), api.raw_key).status_code == 200
    assert api.get("/api/v1/tiers").status_code == 200


@override_settings(API_AUTH_FAILURE_RATE="5/hour")
def test_bad_signatures_count_as_failures_too(db):
    stranger = _stranger()
    headers = {"HTTP_X_SERVICE_NAME": "billing-svc", "HTTP_X_TIMESTAMP": "1", "HTTP_X_NONCE": "abcdefgh12",
               "HTTP_X_SIGNATURE": "v1=00"}
    for _ in range(5):
        _error(stranger.get("/api/v1/tiers", **headers), 401, "UNAUTHORIZED")
    _error(stranger.get("/api/v1/tiers", **headers), 429, "TOO_MANY_REQUESTS")


def test_random_keys_cost_no_write_and_no_cache_entry_per_key(api):
    assert api.get("/api/v1/tiers").status_code == 200
    stranger = _stranger()
    before = _cache_keys()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            _error(_get_with_key(stranger, generate_key()), 401, "UNAUTHORIZED")
    writes = [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert writes == []
    assert _cache_keys() - before <= 1, "at most one failure counter for the address, no entry per key"


def test_the_same_unknown_key_again_costs_no_lookup(db):
    stranger = _stranger()
    key = generate_key()
    _error(_get_with_key(stranger, key), 401, "UNAUTHORIZED")
    with CaptureQueriesContext(connection) as queries:
        _error(_get_with_key(stranger, key), 401, "UNAUTHORIZED")
    assert len(queries) == 0


@pytest.mark.parametrize(
    ("remote", "expected"),
    [("203.0.113.7", "203.0.113.7"), ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
     ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"), ("::ffff:203.0.113.7", "203.0.113.7")],
)
def test_client_addresses_group_ipv6_by_64(rf, remote, expected):
    request = rf.get("/", REMOTE_ADDR=remote)
    assert client_address(request) == expected


def test_x_forwarded_for_is_ignored_without_proxies(rf):
    request = rf.get("/", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert client_address(request) == "203.0.113.7"


@override_settings(API_RATE_LIMIT="3/minute")
def test_a_key_over_its_rate_limit_gets_429_and_other_keys_do_not(api, product):
    # The key lookup counts the request (one Redis round trip for both when
    # the key is cached there); the throttle judges the count.
    from companies.services import api_key_create

    for _ in range(3):
        assert api.get("/api/v1/tiers").status_code == 200
    response = api.get("/api/v1/tiers")
    error = _error(response, 429, "TOO_MANY_REQUESTS")
    assert 1 <= int(response["Retry-After"]) <= 61 and error["details"]["retryAfter"] == int(response["Retry-After"])
    _, other_key = api_key_create(product=product, name="second key")
    assert _get_with_key(APIClient(), other_key).status_code == 200


@pytest.mark.redis
def test_get_and_count_counts_only_keys_that_exist(db):
    from config.cache import get_and_count

    cache.set("present", ("a", 1), 60)
    assert get_and_count("absent", "counter-absent", 61) == (None, None)
    assert cache.get("counter-absent") is None, "an unknown key creates no counter"
    assert get_and_count("present", "counter-present", 61) == (("a", 1), 1)
    assert get_and_count("present", "counter-present", 61) == (("a", 1), 2)
    client = cache._cache.get_client()
    assert 0 < client.ttl(cache.make_and_validate_key("counter-present")) <= 61
