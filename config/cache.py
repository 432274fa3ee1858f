"""Cache plumbing for the API's hot path.

`PooledRedisCache` is Django's RedisCache with one redis client per connection
pool: Django's own client builds a new `redis.Redis` object for every cache
operation, which costs more than the round trip itself when a request makes
several cache calls (key lookup, rate limit, feature check).

`counter_incr` is a windowed counter in one round trip on Redis (pipelined
INCR + EXPIRE), used by the rate limiter."""

from __future__ import annotations

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class PooledRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        # redis.Redis is thread-safe: it only borrows connections from its pool.
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            if index not in self._pools:
                self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
            client = self._clients[index] = self._client(connection_pool=self._pools[index])
        return client


class PooledRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = PooledRedisCacheClient


def counter_incr(key: str, ttl_seconds: int, *, alias: str = "default") -> int:
    """Increment the counter `key` (created at 0, expiring after `ttl_seconds`)
    and return the new value."""
    backend = caches[alias]
    if isinstance(backend, RedisCache):
        redis_key = backend.make_and_validate_key(key)
        pipeline = backend._cache.get_client(redis_key, write=True).pipeline(transaction=False)
        pipeline.incr(redis_key)
        pipeline.expire(redis_key, ttl_seconds)
        count, _ = pipeline.execute()
        return int(count)
    backend.add(key, 0, ttl_seconds)
    try:
        return backend.incr(key)
    except ValueError:  # expired between add and incr
        backend.set(key, 1, ttl_seconds)
        return 1
