"""Fixtures shared by the whole suite.

Tests marked `postgres` run only on PostgreSQL (DATABASE_URL set) and tests
marked `redis` only with a real Redis (REDIS_URL set); elsewhere they are
skipped with the reason shown by `pytest -ra`."""

from __future__ import annotations

import os

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient


def pytest_collection_modifyitems(config, items):
    from django.db import connection

    on_postgres = connection.vendor == "postgresql"
    has_redis = bool(os.environ.get("REDIS_URL"))
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://…")
    skip_redis = pytest.mark.skip(reason="needs Redis: set REDIS_URL=redis://…")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not has_redis:
            item.add_marker(skip_redis)


def _reset_process_state() -> None:
    """The per-process memories of the platform: blocked addresses, unknown
    keys, the cache and broker outage breakers."""
    from companies import api_keys
    from companies.api import throttling
    from config import cache as cache_module
    from config import tasks

    throttling._blocked = throttling._BlockedAddresses()
    throttling._local_failures = throttling._LocalCounters()
    api_keys._unknown_keys = api_keys._UnknownKeys()
    for breaker in cache_module._BREAKERS.values():
        breaker.down_since, breaker.next_probe_at, breaker.pending_deletions = None, 0.0, {}
    tasks._state["down_since"] = None


@pytest.fixture(autouse=True)
def _clear_cache():
    """Caches (API key lookups, feature checks, throttles) must not leak
    between tests."""
    _reset_process_state()
    cache.clear()
    yield
    cache.clear()
    _reset_process_state()


@pytest.fixture
def product(db):
    from tests.factories.companies import ProductFactory

    return ProductFactory(code="chat", name="Chat App")


@pytest.fixture
def other_product(db):
    from tests.factories.companies import ProductFactory

    return ProductFactory(code="crm", name="CRM App")


def _client_for(product) -> APIClient:
    from companies.services import api_key_create

    _, raw_key = api_key_create(product=product, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    client.raw_key = raw_key
    return client


@pytest.fixture
def api(product) -> APIClient:
    """An API client authenticated with a fresh key of `product`."""
    return _client_for(product)


@pytest.fixture
def other_api(other_product) -> APIClient:
    """A client of another product, for tenant-isolation tests."""
    return _client_for(other_product)
