"""Where a webhook may be sent: the one rule for endpoint URLs (SPEC §11),
used when an endpoint is saved (API and admin) and again at every delivery.

- `http` or `https` only; `https` only when NOTIFICATIONS_REQUIRE_HTTPS
  (the production default).
- Unless NOTIFICATIONS_ALLOW_PRIVATE_TARGETS (the development default), no
  address that is private, loopback, link-local, multicast, reserved or
  unspecified — checked on every address the host name resolves to, at save
  time and again at delivery time, and the delivery connects to the address
  that was checked (no second lookup that DNS rebinding could answer
  differently)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from config.errors import BadRequest

MAX_URL_LENGTH = 2000


# What `target_parse` accepts, as an OpenAPI `pattern` for the API schema (a
# little narrower: no credentials, IP literals or IDNA hosts).
TARGET_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9][A-Za-z0-9.\-]{0,200}(?::[0-9]{1,4})?(?:[/?#][!-~]*)?$"


class TargetRefused(Exception):
    """The URL may not be called; the message says why (shown to the product)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line


def _require_https() -> bool:
    return bool(getattr(settings, "NOTIFICATIONS_REQUIRE_HTTPS", False))


def _allow_private() -> bool:
    return bool(getattr(settings, "NOTIFICATIONS_ALLOW_PRIVATE_TARGETS", True))


def target_parse(url: str) -> Target:
    """Split and check the URL's form. Raises TargetRefused."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"Must be a URL of at most {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise TargetRefused("Must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefused(f"Not a valid URL ({error}).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused("Must be an http or https URL.")
    if scheme != "https" and _require_https():
        raise TargetRefused("Must be an https URL.")
    if parts.username or parts.password:
        raise TargetRefused("Must not contain credentials.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetRefused("Must name a host.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path)


def _address_refusal(address: str) -> str | None:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "a reserved address"
    return None


def _literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def target_addresses(target: Target) -> list[str]:
    """The addresses to connect to, each one allowed. Resolves the host name
    (raises TargetRefused if it does not resolve or any address is refused:
    one bad answer among several is enough for an attacker)."""
    literal = _literal_ip(target.host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise TargetRefused(f"Host {target.host!r} does not resolve ({error}).") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not _allow_private():
        for address in addresses:
            refusal = _address_refusal(address)
            if refusal:
                raise TargetRefused(f"Must not point to {refusal} ({address}).")
    return addresses


def endpoint_url_validate(url: str, *, field: str = "url") -> str:
    """The check made when an endpoint is saved: the form, and — unless
    private targets are allowed — that the host is not an internal address.
    A host name that does not resolve yet is accepted (it is checked again at
    every delivery). Raises BadRequest naming `field`."""
    try:
        target = target_parse(url)
        if not _allow_private():
            try:
                target_addresses(target)
            except TargetRefused as refusal:
                if "does not resolve" not in str(refusal):
                    raise
    except TargetRefused as refusal:
        raise BadRequest.for_field(field, str(refusal)) from None
    return url
