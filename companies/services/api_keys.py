"""API keys of products: create and revoke (the lookup is companies.api_keys)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ..api_keys import forget_key, generate_key, hash_key
from ..models import ApiKey, Product


def api_key_create(*, product: Product, name: str, created_by=None) -> tuple[ApiKey, str]:
    """Create a key for `product`. Returns (key row, raw key); the raw key is
    never stored and cannot be shown again."""
    raw_key = generate_key()
    key = ApiKey.objects.create(
        product=product, name=name, prefix=raw_key[:10], key_hash=hash_key(raw_key), created_by=created_by
    )
    return key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key at once (also in every process's cache). Idempotent."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    transaction.on_commit(lambda: forget_key(api_key.key_hash))
    return api_key
