"""SPEC §2 "Degrade, don't fail" (issue 8 item 2): with Redis unreachable the
API keeps answering from PostgreSQL — authentication, rate limits, feature
checks, tracks, lists — logs the outage once, and loses no queued work; when
Redis is back, a retried track counts once and the invalidations missed
during the outage are replayed."""

from __future__ import annotations

import logging
import os
import socket
import threading
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient

from companies.api_keys import hash_key
from companies.models import ApiKey, RateLimitCounter
from companies.services import api_key_revoke
from config.cache import CacheUnavailable, cache_is_down
from metering.models import UsageEvent, UsageMeter
from tests.platform.ports import free_port
from tests.factories.companies import CompanyFactory, ProductLinkFactory
from tests.factories.entitlements import FeatureAccessFactory, FeatureFactory, MeteredFeatureFactory

pytestmark = pytest.mark.django_db


def _redis_cache(location: str) -> dict:
    return {
        "default": {
            "BACKEND": "config.cache.PooledRedisCache",
            "LOCATION": location,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "saasdesk-test") + "-outage",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }


@pytest.fixture
def catalog(product):
    company = CompanyFactory(name="Acme", short_id="acme")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    sso = FeatureFactory(product=product, code="sso")
    credits = MeteredFeatureFactory(product=product, code="ai_credit")
    FeatureAccessFactory(company=company, feature=sso)
    FeatureAccessFactory(company=company, feature=credits, quantity_limit=1000)
    return company


def _track(api, company, key: str, quantity: int = 3):
    return api.post(
        "/api/v1/usage/track",
        {"companyId": str(company.pk), "featureCode": "ai_credit", "quantity": quantity, "idempotencyKey": key},
        format="json",
    )


def test_the_api_answers_from_postgresql_while_redis_is_down(api, catalog, caplog):
    company = catalog
    with override_settings(CACHES=_redis_cache(f"redis://127.0.0.1:{free_port()}/0")):
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                check = api.get(f"/api/v1/companies/{company.pk}/features/ai_credit")
                assert check.status_code == 200, check.content
            assert api.get(f"/api/v1/companies/{company.pk}/features/sso").json()["canUse"] is True
            track = _track(api, company, "outage-1")
            assert track.status_code == 200, track.content
            assert track.json()["currentUsage"] == 3
            for path in ("/api/v1/tiers", f"/api/v1/companies/{company.pk}/features", f"/api/v1/companies/{company.pk}",
                         f"/api/v1/usage/history?companyId={company.pk}"):
                response = api.get(path)
                assert response.status_code == 200, (path, response.content)
            stranger = APIClient()
            stranger.credentials(HTTP_AUTHORIZATION="Bearer os_sk_" + "x" * 43)
            assert stranger.get("/api/v1/tiers").status_code == 401
            assert cache_is_down()
            health = api.get("/healthz")
            assert health.status_code == 200 and health.json()["cache"] == "down"
    outage_logs = [r for r in caplog.records if "cache unreachable" in r.getMessage()]
    assert len(outage_logs) == 1, "the outage is logged once, not per request"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.exc_info]


def test_rate_limits_hold_in_postgresql_while_redis_is_down(api, catalog):
    with override_settings(CACHES=_redis_cache(f"redis://127.0.0.1:{free_port()}/0"), API_RATE_LIMIT="2/hour"):
        statuses = [api.get("/api/v1/tiers").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert RateLimitCounter.objects.get().count == 3


def test_a_redis_outage_costs_no_round_trip_until_the_reprobe(catalog):
    with override_settings(CACHES=_redis_cache(f"redis://127.0.0.1:{free_port()}/0"), CACHE_REPROBE_SECONDS=3600):
        with pytest.raises(CacheUnavailable):
            cache.get("x")
        from django.core.cache import caches

        client = caches["default"]._cache
        client.get_client = None  # any network attempt would now fail with a TypeError
        with pytest.raises(CacheUnavailable):
            cache.get("x")


# --- Real Redis behind a proxy we can cut, then restore ------------------------------------------


class RedisProxy:
    """A TCP forwarder to the test Redis; `cut()` closes every connection and
    the listener (Redis "goes down"), `restore()` listens again on the same port."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass
        self._sockets.clear()


@contextmanager
def redis_behind_proxy():
    url = urlparse(os.environ["REDIS_URL"])
    proxy = RedisProxy((url.hostname or "127.0.0.1", url.port or 6379))
    proxy.restore()
    try:
        with override_settings(
            CACHES=_redis_cache(f"redis://127.0.0.1:{proxy.port}{url.path or '/0'}"), CACHE_REPROBE_SECONDS=0
        ):
            cache.clear()
            yield proxy
            proxy.restore() if proxy._listener is None else None
            cache.clear()
    finally:
        proxy.cut()


@pytest.mark.redis
def test_a_track_made_during_the_outage_counts_once_when_retried_after(api, catalog):
    company = catalog
    with redis_behind_proxy() as proxy:
        assert api.get(f"/api/v1/companies/{company.pk}/features/ai_credit").status_code == 200
        proxy.cut()
        during = _track(api, company, "job-7")
        assert during.status_code == 200, during.content
        assert cache_is_down()
        proxy.restore()
        after = _track(api, company, "job-7")
        assert after.status_code == 200, after.content
        assert after["Idempotent-Replayed"] == "true"
        assert not cache_is_down()
        assert after.json()["currentUsage"] == during.json()["currentUsage"] == 3
        check = api.get(f"/api/v1/companies/{company.pk}/features/ai_credit").json()
        assert check["currentUsage"] == 3
    assert UsageMeter.objects.get().value == 3
    assert UsageEvent.objects.count() == 1


@pytest.mark.redis
def test_invalidations_missed_during_the_outage_are_replayed(api, catalog, django_capture_on_commit_callbacks):
    with redis_behind_proxy() as proxy:
        assert api.get("/api/v1/tiers").status_code == 200  # the key lookup is now cached
        cache_key = f"apikey:{hash_key(api.raw_key)}"
        assert cache.get(cache_key)
        proxy.cut()
        with django_capture_on_commit_callbacks(execute=True):
            api_key_revoke(api_key=ApiKey.objects.get())
        assert api.get("/api/v1/tiers").status_code == 401  # read from PostgreSQL meanwhile
        proxy.restore()
        cache.get("anything")  # the first call after the outage replays the deletions
        assert cache.get(cache_key) is None
