"""`/healthz` for load balancers: JSON always, 503 envelope when PostgreSQL is
unreachable (the only backing service whose outage makes the API fail;
SPEC §2 "Degrade, don't fail")."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.api.envelope import error_response
from config.cache import cache_is_down
from config.errors import ServiceUnavailable

logger = logging.getLogger("saasdesk.health")


@never_cache
@require_GET
def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logger.error("healthz: database unavailable", extra={"error": exc.__class__.__name__})
        return error_response(ServiceUnavailable("The database is unavailable."), request=request,
                              headers={"Retry-After": "1"})
    # Redis being down is a degradation, not a failure: still 200.
    return JsonResponse({"status": "ok", "database": "ok", "cache": "down" if cache_is_down() else "ok"})
