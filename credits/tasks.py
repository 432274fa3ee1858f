"""Celery tasks of the credits app: thin wrappers around services."""

from __future__ import annotations

import logging

from celery import shared_task

from companies.service_credentials import service_nonces_prune

from .services import credit_lots_expire, reservations_expire

logger = logging.getLogger(__name__)

_RETRY = {"acks_late": True, "autoretry_for": (Exception,), "retry_backoff": True, "retry_backoff_max": 300,
          "max_retries": 5}


@shared_task(name="credits.expire_reservations", **_RETRY)
def expire_reservations() -> int:
    """End holds past their TTL (fallback charge for runs that recorded usage
    or asked chargeOnExpiry, else free). Idempotent; also prunes the database
    nonces of signed requests kept while the cache was down."""
    expired = reservations_expire()
    service_nonces_prune()
    if expired:
        logger.info("reservations expired", extra={"expired": expired})
    return expired


@shared_task(name="credits.expire_credits", **_RETRY)
def expire_credits() -> int:
    """Write an `expiry` entry for what is left in every expired lot. Idempotent."""
    swept = credit_lots_expire()
    if swept:
        logger.info("credit lots expired", extra={"wallets": swept})
    return swept
