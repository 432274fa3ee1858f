"""One-call onboarding of a product's new organisation (SPEC §6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import transaction

from billing.models import Subscription
from companies.models import Company, ProductLink
from companies.selectors import product_link_get
from companies.services import SmartLinkStatus, company_create, company_smart_link, contact_upsert
from companies.smart_link import DEFAULT_MIN_CONFIDENCE
from config.errors import BadRequest, Conflict
from companies.actors import Actor
from entitlements.services import tier_apply

from .subscriptions import (
    billing_profile_ensure,
    checkout_claim_apply,
    checkout_session_require_complete,
    stripe_checkout_session_get,
    stripe_subscription_get,
    subscription_link_apply,
)
from .tiers import tier_default_get, tier_get_by_code


class LinkStatus:
    CREATED = "created"
    LINKED = "linked"
    ALREADY_LINKED = "already_linked"


@dataclass(frozen=True)
class OnboardBillingStatus:
    """What onboarding did about billing: yes/no booleans, and separate
    fields naming the things (SPEC §2 "Booleans say yes or no")."""

    claimed: bool = False  # the checkout session is claimed by this company
    linked: bool = False  # the Stripe subscription is linked to this company
    tier_applied: bool = False  # this call applied a tier
    tier_code: str | None = None  # the tier of the subscription, or the one applied
    subscription_id: UUID | None = None
    stripe_subscription_id: str | None = None

    @classmethod
    def for_subscription(cls, subscription: Subscription | None, *, tier_applied: bool, **flags) -> OnboardBillingStatus:
        if subscription is None:
            return cls(**flags)
        return cls(
            tier_applied=tier_applied,
            tier_code=subscription.tier.code if subscription.tier_id else None,
            subscription_id=subscription.pk,
            stripe_subscription_id=subscription.stripe_subscription_id,
            **flags,
        )


@dataclass(frozen=True)
class OnboardResult:
    company: Company
    link_status: str
    billing_status: OnboardBillingStatus = field(default_factory=OnboardBillingStatus)
    subscription_added: bool = False  # a replay claimed/linked a subscription new to the company

    @property
    def created(self) -> bool:
        """A new link (and maybe a new company), or on a replay a newly claimed or linked
        subscription, was made: the API answers 201 (SPEC §2 success codes)."""
        return self.link_status != LinkStatus.ALREADY_LINKED or self.subscription_added


def onboard(
    *,
    product_id,
    external_org_id: str,
    hints: Mapping[str, Any] | None = None,
    tier_code: str | None = None,
    checkout_session_id: str | None = None,
    stripe_subscription_id: str | None = None,
    stripe_customer_id: str | None = None,
    contact_email: str | None = None,
    contact_name: str | None = None,
    created_at: datetime | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    actor: Actor,
) -> OnboardResult:
    """Smart-match the org to an existing company (link at the threshold) or
    create one; then claim the checkout session, or link the subscription, or
    apply `tier_code`, or the default tier; and add the contact — all or
    nothing. An org already linked in this product → already_linked, and
    nothing changes (so a retried call is harmless)."""
    hints = hints or {}
    external_org_id = (external_org_id or "").strip()
    if not external_org_id:
        raise BadRequest.for_field("externalOrgId", "This field may not be blank.")
    if checkout_session_id and stripe_subscription_id:
        raise BadRequest.for_field("stripeSubscriptionId", "Give checkoutSessionId or stripeSubscriptionId, not both.")
    billing_given = dict(
        checkout_session_id=checkout_session_id,
        stripe_subscription_id=stripe_subscription_id,
        stripe_customer_id=stripe_customer_id,
        tier_code=tier_code,
        actor=actor,
    )
    existing = _existing(product_id=product_id, external_org_id=external_org_id)
    if existing is not None:
        return _already_linked(existing, product_id=product_id, **billing_given)

    # Validate and read Stripe before writing anything: a bad tier code or an
    # unpaid checkout leaves no half-onboarded company behind.
    tier = tier_get_by_code(product_id=product_id, tier_code=tier_code) if tier_code else None
    session, stripe_subscription = _stripe_read(
        checkout_session_id=checkout_session_id, stripe_subscription_id=stripe_subscription_id
    )

    emails = [str(email) for email in (hints.get("emails") or [])]
    if contact_email and contact_email.lower() not in {email.lower() for email in emails}:
        emails.append(contact_email)
    try:
        with transaction.atomic():
            smart = company_smart_link(
                product_id=product_id,
                external_org_id=external_org_id,
                company_name=hints.get("company_name"),
                domain=hints.get("domain"),
                emails=emails,
                min_confidence=min_confidence,
            )
            if smart.status == SmartLinkStatus.ALREADY_LINKED:
                raise _Raced()
            if smart.status == SmartLinkStatus.LINKED:
                company, link_status = smart.company, LinkStatus.LINKED
                if contact_email:
                    contact_upsert(company=company, email=contact_email, name=contact_name or None)
            else:
                company = company_create(
                    product_id=product_id,
                    name=hints.get("company_name") or hints.get("domain") or external_org_id,
                    domain=hints.get("domain"),
                    external_org_id=external_org_id,
                    contact_email=contact_email,
                    contact_name=contact_name,
                    created_at=created_at,
                )
                link_status = LinkStatus.CREATED
            billing_status = _billing(
                company=company,
                product_id=product_id,
                session=session,
                stripe_subscription=stripe_subscription,
                stripe_customer_id=stripe_customer_id,
                tier=tier,
                actor=actor,
            )
    except (_Raced, Conflict) as error:
        # A concurrent onboarding of the same org won: answer like a retry.
        existing = _existing(product_id=product_id, external_org_id=external_org_id)
        if existing is None:
            if isinstance(error, _Raced):
                raise Conflict("The organisation was linked and unlinked concurrently; retry.") from None
            raise
        return _already_linked(existing, product_id=product_id, **billing_given)
    return OnboardResult(company=company, link_status=link_status, billing_status=billing_status)


class _Raced(Exception):
    pass


def _existing(*, product_id, external_org_id: str) -> ProductLink | None:
    return product_link_get(product_id=product_id, external_org_id=external_org_id)


def _stripe_read(*, checkout_session_id: str | None, stripe_subscription_id: str | None):
    """The checkout session (complete) and its subscription, or the subscription, from Stripe."""
    if checkout_session_id:
        session = stripe_checkout_session_get(checkout_session_id=checkout_session_id)
        stripe_subscription = stripe_subscription_get(
            stripe_subscription_id=checkout_session_require_complete(session), field_name="checkoutSessionId"
        )
        return session, stripe_subscription
    if stripe_subscription_id:
        return None, stripe_subscription_get(stripe_subscription_id=stripe_subscription_id)
    return None, None


def _already_linked(
    link: ProductLink,
    *,
    product_id,
    checkout_session_id: str | None,
    stripe_subscription_id: str | None,
    stripe_customer_id: str | None,
    tier_code: str | None,
    actor: Actor,
) -> OnboardResult:
    """A replay changes nothing (no tier applied, no contact added) and reports the state as
    it is — except that a checkout session or subscription this company has not seen yet is
    still claimed or linked (SPEC §6), exactly as `claim-checkout` / `link-subscription` would."""
    subscriptions = Subscription.objects.select_related("tier").filter(company=link.company)
    if checkout_session_id:
        subscription = subscriptions.filter(checkout_session_id=checkout_session_id).first()
        flags = {"claimed": True}
    elif stripe_subscription_id:
        subscription = subscriptions.filter(stripe_subscription_id=stripe_subscription_id).first()
        flags = {"linked": True}
    else:
        return OnboardResult(company=link.company, link_status=LinkStatus.ALREADY_LINKED, billing_status=OnboardBillingStatus())
    if subscription is not None:
        status = OnboardBillingStatus.for_subscription(subscription, tier_applied=False, **flags)
        added = False
    else:
        tier = tier_get_by_code(product_id=product_id, tier_code=tier_code) if tier_code else None
        session, stripe_subscription = _stripe_read(
            checkout_session_id=checkout_session_id, stripe_subscription_id=stripe_subscription_id
        )
        with transaction.atomic():
            status = _billing(
                company=link.company,
                product_id=product_id,
                session=session,
                stripe_subscription=stripe_subscription,
                stripe_customer_id=stripe_customer_id,
                tier=tier,
                actor=actor,
            )
        added = True
    return OnboardResult(
        company=link.company, link_status=LinkStatus.ALREADY_LINKED, billing_status=status, subscription_added=added
    )


def _billing(*, company, product_id, session, stripe_subscription, stripe_customer_id, tier, actor) -> OnboardBillingStatus:
    if session is not None:
        claim = checkout_claim_apply(
            company=company, product_id=product_id, session=session, stripe_subscription=stripe_subscription, actor=actor
        )
        return OnboardBillingStatus.for_subscription(claim.subscription, tier_applied=claim.tier_code is not None, claimed=True)
    if stripe_subscription is not None:
        link = subscription_link_apply(
            company=company,
            product_id=product_id,
            stripe_subscription=stripe_subscription,
            stripe_customer_id=stripe_customer_id,
            tier=tier,
            display_name=None,
            actor=actor,
        )
        subscription = link.subscription
        return OnboardBillingStatus.for_subscription(subscription, tier_applied=subscription.tier_id is not None, linked=True)
    if stripe_customer_id:
        billing_profile_ensure(company=company, product_id=product_id, stripe_customer_id=stripe_customer_id)
    tier = tier or tier_default_get(product_id=product_id)
    if tier is None:
        return OnboardBillingStatus()
    tier_apply(company=company, tier=tier, actor=actor, reason="onboarding")
    return OnboardBillingStatus(tier_applied=True, tier_code=tier.code)
