"""Smart link: find the company an external org belongs to and link it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

from config.errors import BadRequest, Conflict

from ..models import Company, LinkType, Product, ProductLink
from ..smart_link import (
    DEFAULT_MIN_CONFIDENCE,
    MATCHED_BY_EXTERNAL_ORG_ID,
    SmartLinkCandidate,
    smart_link_match,
)
from .cleaning import clean_domain, clean_email, clean_external_id
from .links import product_link_create


class SmartLinkStatus:
    ALREADY_LINKED = "already_linked"
    LINKED = "linked"
    SUGGESTIONS = "suggestions"
    NO_MATCH = "no_match"


@dataclass
class SmartLinkResult:
    status: str
    company: Company | None = None
    confidence: int | None = None
    matched_by: str | None = None
    suggestions: list[SmartLinkCandidate] = field(default_factory=list)
    link: ProductLink | None = None


def company_smart_link(
    *,
    product_id: UUID,
    external_org_id: str,
    company_name: str | None = None,
    domain: str | None = None,
    emails: Iterable[str] = (),
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    external_user_id: str = "",
) -> SmartLinkResult:
    """Find the company of the product's customer pool an external org
    belongs to and link it when there is one clear winner at or above
    `min_confidence` (0–1). Companies of other pools are never considered.
    See companies.smart_link for the scores and the clear-winner rule."""
    external_org_id = clean_external_id(external_org_id)
    if not 0 <= min_confidence <= 1:
        raise BadRequest.for_field("minConfidence", "Must be between 0 and 1.")
    domain = clean_domain(domain, field_name="hints.domain")
    emails = [clean_email(e, field_name=f"hints.emails.{i}") for i, e in enumerate(emails or [])]

    link = ProductLink.objects.select_related("company").filter(
        product_id=product_id, external_org_id=external_org_id
    ).first()
    if link is not None:
        return _already_linked_result(link)
    customer_pool = Product.objects.values_list("customer_pool", flat=True).get(pk=product_id)
    match = smart_link_match(
        customer_pool=customer_pool,
        company_name=(company_name or "").strip(), domain=domain, emails=emails, min_confidence=min_confidence
    )
    if match.winner is not None:
        winner = match.winner
        try:
            link, _ = product_link_create(
                product_id=product_id,
                company=winner.company,
                external_org_id=external_org_id,
                external_user_id=external_user_id or "",
                link_type=LinkType.SMART,
                confidence=winner.confidence,
            )
        except Conflict:
            # Another request linked this external id meanwhile: report that.
            link = ProductLink.objects.select_related("company").get(
                product_id=product_id, external_org_id=external_org_id
            )
            return _already_linked_result(link)
        return SmartLinkResult(
            status=SmartLinkStatus.LINKED,
            company=winner.company,
            confidence=winner.confidence,
            matched_by=winner.matched_by,
            link=link,
        )
    if match.candidates:
        return SmartLinkResult(status=SmartLinkStatus.SUGGESTIONS, suggestions=match.suggestions)
    return SmartLinkResult(status=SmartLinkStatus.NO_MATCH)


def _already_linked_result(link: ProductLink) -> SmartLinkResult:
    return SmartLinkResult(
        status=SmartLinkStatus.ALREADY_LINKED,
        company=link.company,
        confidence=100,
        matched_by=MATCHED_BY_EXTERNAL_ORG_ID,
        link=link,
    )
