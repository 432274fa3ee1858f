"""The feature-check cache: products call the check on every request of
their own, so the data behind it (the product's catalog, whether a company
is visible to a product, the company's access row) is served from Django's
cache (Redis when REDIS_URL is set, local memory otherwise).

Entries (all plain data, never model instances):
  ent:cat:{product}                 features by code + tier codes of a product
  ent:vis:{product}:{company}       is the company linked to the product
  ent:org:{product}:{sha1(org id)}  company id of an external org id ("" = none)
  ent:acc:{product}:{company}:{code} the access row ({} = no row)

Usage is *not* cached: metering reads it live and passes it to the check.

Stale-set race. A reader that misses, reads the database before a writer
commits and stores the old value after the writer's invalidation would keep
stale data until the TTL. To close that window every invalidation first
writes a fresh token under `ent:inv:<key>` and then deletes the key; a reader
fetches the token together with the value (one round trip) and, after
storing a freshly loaded value, deletes it again if the token moved.

Writers invalidate immediately (so the writing request itself reads fresh
data) and again on commit (so no reader can cache the pre-commit state).
A cache outage never fails a check: it falls back to the database, and the
outage is logged once by the cache backend (config/cache.py), not per check.
Invalidations made during an outage are replayed when Redis is back."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache import cache
from django.db import transaction

from config.cache import CacheUnavailable, delete_eventually

logger = logging.getLogger("saasdesk.entitlements.cache")

ENTRY_TTL = 300  # seconds; bounds staleness only if an invalidation is ever missed
TOKEN_TTL = 24 * 3600
_INV = "ent:inv:"


def catalog_key(product_id) -> str:
    return f"ent:cat:{product_id}"


def visibility_key(product_id, company_id) -> str:
    return f"ent:vis:{product_id}:{company_id}"


def org_key(product_id, external_org_id: str) -> str:
    digest = hashlib.sha1(external_org_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"ent:org:{product_id}:{digest}"


def account_key(product_id, company_id) -> str:
    """Whether the company's account with the product is suspended (SPEC §3)."""
    return f"ent:susp:{product_id}:{company_id}"


def access_key(product_id, company_id, feature_code: str) -> str:
    return f"ent:acc:{product_id}:{company_id}:{feature_code}"


# --- reading -------------------------------------------------------------------


def get_or_load(loaders: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Values for every key of `loaders`, from the cache in one round trip;
    each missing key is loaded from its loader and stored."""
    keys = list(loaders)
    try:
        found = cache.get_many(keys + [_INV + key for key in keys])
    except CacheUnavailable:
        return {key: loader() for key, loader in loaders.items()}
    except Exception:  # noqa: BLE001 - the cache is an optimisation, never a dependency
        logger.warning("feature-check cache unavailable; reading the database", exc_info=True)
        return {key: loader() for key, loader in loaders.items()}
    values: dict[str, Any] = {}
    for key, loader in loaders.items():
        if key in found:
            values[key] = found[key]
        else:
            values[key] = _load_and_store(key, found.get(_INV + key), loader)
    return values


def _load_and_store(key: str, token_before, loader: Callable[[], Any]):
    value = loader()
    try:
        cache.set(key, value, ENTRY_TTL)
        if cache.get(_INV + key) != token_before:
            # Invalidated while we were reading: what we stored may predate it.
            cache.delete(key)
    except CacheUnavailable:
        pass
    except Exception:  # noqa: BLE001
        logger.warning("feature-check cache unavailable while storing", exc_info=True)
    return value


# --- invalidation ------------------------------------------------------------------


def _invalidate_now(keys: list[str]) -> None:
    if not keys:
        return
    token = uuid.uuid4().hex
    try:
        cache.set_many({_INV + key: token for key in keys}, TOKEN_TTL)
    except CacheUnavailable:
        pass  # nothing can be cached meanwhile either; the deletion below is replayed
    except Exception:  # noqa: BLE001
        logger.error("could not write feature-check invalidation tokens", exc_info=True, extra={"keys": keys[:20]})
    try:
        delete_eventually(keys)
    except Exception:  # noqa: BLE001
        logger.error("could not invalidate feature-check cache entries", exc_info=True, extra={"keys": keys[:20]})


def invalidate_keys(keys: Iterable[str]) -> None:
    """Drop `keys` now and once more when the current transaction commits."""
    keys = sorted(set(keys))
    if not keys:
        return
    _invalidate_now(keys)
    if transaction.get_connection().in_atomic_block:
        # Outside a transaction the write is already committed: once is enough.
        transaction.on_commit(lambda: _invalidate_now(keys))


def invalidate_access(*, product_id, company_id, feature_codes: Iterable[str]) -> None:
    invalidate_keys(access_key(product_id, company_id, code) for code in feature_codes)


def invalidate_catalog(*, product_id) -> None:
    """After any change to a product's features or tiers."""
    invalidate_keys([catalog_key(product_id)])


def invalidate_link(*, product_id, company_id, external_org_id: str | None = None) -> None:
    """After a product link is created, changed or deleted."""
    keys = [visibility_key(product_id, company_id)]
    if external_org_id is not None:
        keys.append(org_key(product_id, external_org_id))
    invalidate_keys(keys)


def invalidate_feature_check(*, company_id, feature_id) -> None:
    """Forget the cached check of one company × feature (public: other apps
    call it after writing something a check reads)."""
    from .models import Feature

    feature = Feature.objects.filter(pk=feature_id).values("product_id", "code").first()
    if feature is not None:
        invalidate_access(product_id=feature["product_id"], company_id=company_id, feature_codes=[feature["code"]])


def invalidate_company_checks(*, company_id) -> None:
    """Forget every cached check (and visibility) of a company, in every
    product it is linked to or has access rows in."""
    from django.db.models import Q

    from companies.models import ProductLink

    from .models import Feature

    rows = (
        Feature.objects.filter(Q(product__links__company_id=company_id) | Q(access__company_id=company_id))
        .values_list("product_id", "code")
        .distinct()
    )
    keys: list[str] = []
    for product_id, code in rows:
        keys.append(access_key(product_id, company_id, code))
    for product_id in ProductLink.objects.filter(company_id=company_id).values_list("product_id", flat=True):
        keys.append(visibility_key(product_id, company_id))
        keys.append(account_key(product_id, company_id))
    invalidate_keys(keys)
