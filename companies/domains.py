"""Domain names as SaaSDesk stores and compares them.

A company's domain is kept normalised — lower case, no scheme, no `www.`, no
path, no port — so that "https://www.Acme.com/pricing" and "acme.com" are the
same customer for search, smart linking and the database's check constraint."""

from __future__ import annotations

import re

from config.errors import BadRequest

from .error_codes import CompaniesErrorCode

MAX_DOMAIN_LENGTH = 253

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")

# Addresses at these providers say nothing about the employer, so an email
# hint at gmail.com must never match a company (SPEC §3).
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.de",
        "hotmail.fr",
        "live.com",
        "msn.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.de",
        "yahoo.fr",
        "ymail.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "gmx.de",
        "gmx.net",
        "gmx.com",
        "gmx.at",
        "gmx.ch",
        "web.de",
        "t-online.de",
        "freenet.de",
        "posteo.de",
        "mailbox.org",
        "mail.com",
        "mail.ru",
        "yandex.ru",
        "yandex.com",
        "zoho.com",
        "fastmail.com",
        "hey.com",
        "tutanota.com",
        "tuta.io",
        "qq.com",
        "163.com",
        "126.com",
        "orange.fr",
        "free.fr",
        "laposte.net",
        "libero.it",
        "btinternet.com",
        "comcast.net",
        "verizon.net",
    }
)


# What `normalize_domain` accepts, as an OpenAPI `pattern` (ECMA and Python
# regex alike) for the API schema: an optional scheme, 2–5 labels with a
# letter-led top label (so never an IP address), an optional port and path,
# whitespace around; or nothing (no domain). A little narrower than the
# function (no credentials, no IDNA) so that everything it allows is accepted.
DOMAIN_INPUT_PATTERN = (
    r"^\s*(?:(?:[A-Za-z][A-Za-z0-9+.\-]*://)?"
    r"(?!(?:[Ww][Ww][Ww]\.)+[A-Za-z0-9\-]+\.?(?::[0-9]*)?(?:[/?#\s]|$))"  # "www.com" is "com"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,48}[A-Za-z0-9])?\.){1,4}[A-Za-z](?:[A-Za-z0-9\-]{0,20}[A-Za-z0-9])?\.?"
    r"(?::[0-9]{1,5})?(?:[/?#][!-~]{0,1000})?\s*)?$"
)


class InvalidDomain(BadRequest, ValueError):
    """The text is not a domain name (the message says why)."""

    reason = CompaniesErrorCode.INVALID_DOMAIN


def normalize_domain(value: str) -> str:
    """`"HTTPS://www.Acme.com:443/path?q"` → `"acme.com"`. The empty string
    stays empty (no domain). Raises InvalidDomain for anything that is not a
    host name with at least two labels (IP addresses included)."""
    text = (value or "").strip().lower()
    if not text:
        return ""
    text = _SCHEME.sub("", text)
    # Cut the path, query and fragment, then credentials and port.
    text = re.split(r"[/?#\\]", text, maxsplit=1)[0]
    text = text.rsplit("@", 1)[-1]
    if text.startswith("["):
        raise InvalidDomain("IP addresses are not domains.")
    text = text.split(":", 1)[0].rstrip(".")
    while text.startswith("www."):
        text = text[4:]
    if not text:
        raise InvalidDomain("Enter a domain such as acme.com.")
    try:
        # Internationalised names are stored in their ASCII (punycode) form.
        text = text.encode("idna").decode("ascii") if not text.isascii() else text
    except UnicodeError as exc:
        raise InvalidDomain("Not a valid internationalised domain name.") from exc
    if len(text) > MAX_DOMAIN_LENGTH:
        raise InvalidDomain(f"A domain has at most {MAX_DOMAIN_LENGTH} characters.")
    labels = text.split(".")
    if len(labels) < 2:
        raise InvalidDomain("Enter a domain with a dot, such as acme.com.")
    if not all(_LABEL.match(label) for label in labels):
        raise InvalidDomain("Enter a valid domain such as acme.com (letters, digits, hyphens and dots).")
    if labels[-1].isdigit():
        raise InvalidDomain("IP addresses are not domains.")
    return text


def email_domain(email: str) -> str:
    """The normalised domain of an email address, or "" if it has none."""
    _, _, domain = (email or "").strip().lower().rpartition("@")
    try:
        return normalize_domain(domain)
    except InvalidDomain:
        return ""


def is_free_mail(domain: str) -> bool:
    return domain in FREE_MAIL_DOMAINS
