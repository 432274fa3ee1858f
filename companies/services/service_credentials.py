"""Service credentials of products (HMAC-signed requests, SPEC §7): create
and revoke (the signature check is companies.service_credentials)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from config.errors import BadRequest

from ..models import Product, ServiceCredential
from ..service_credentials import SERVICE_NAME_PATTERN, forget_service, generate_secret


def service_credential_create(*, product: Product, service_name: str, created_by=None) -> tuple[ServiceCredential, str]:
    """Create an HMAC credential for a product's backend service. Returns
    (credential, secret); the secret is shown once."""
    service_name = (service_name or "").strip()
    if not SERVICE_NAME_PATTERN.match(service_name):
        raise BadRequest.for_field("serviceName", "Use 1–100 letters, digits, '-' or '_'.")
    secret = generate_secret()
    credential = ServiceCredential.objects.create(
        product=product, service_name=service_name, prefix=secret[:10], secret=secret, created_by=created_by
    )
    transaction.on_commit(lambda: forget_service(service_name))
    return credential, secret


def service_credential_revoke(*, credential: ServiceCredential) -> ServiceCredential:
    """Revoke at once (the cached lookup is cleared). Idempotent."""
    if credential.revoked_at is None:
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["revoked_at"])
    transaction.on_commit(lambda: forget_service(credential.service_name))
    return credential
