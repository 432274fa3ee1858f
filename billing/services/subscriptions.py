"""Billing profiles and subscriptions: claiming a checkout session, linking a
Stripe subscription, and keeping a company's tier in step with its
subscriptions. Stripe is read first, outside any transaction; the writes then
happen in one transaction with the company row locked."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import stripe
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import GRANTING_STATUSES, BillingProfile, Subscription, SubscriptionStatus
from billing.stripe_client import get_stripe_client, stripe_errors_as_unavailable
from companies.models import Company
from companies.selectors import company_get_visible
from config.errors import BadRequest, Conflict, NotFound
from companies.actors import Actor
from entitlements.models import Tier
from entitlements.services import tier_apply
from metering.services import billing_periods_set

from . import stripe_objects
from .tiers import tier_default_get, tier_resolve

logger = logging.getLogger("saasdesk.billing")


@dataclass(frozen=True)
class SubscriptionSyncResult:
    subscription: Subscription
    created: bool
    features_applied: list[str] = field(default_factory=list)

    @property
    def tier_code(self) -> str | None:
        return self.subscription.tier.code if self.subscription.tier_id else None


@dataclass(frozen=True)
class CheckoutClaimResult:
    subscription: Subscription
    already_claimed: bool
    features_applied: list[str]

    @property
    def tier_code(self) -> str | None:
        return self.subscription.tier.code if self.subscription.tier_id else None


@dataclass(frozen=True)
class SubscriptionLinkResult:
    subscription: Subscription
    already_linked: bool
    features_applied: list[str]


# --- Stripe reads ----------------------------------------------------------------


def stripe_checkout_session_get(*, checkout_session_id: str) -> Any:
    """The checkout session from Stripe; 404 when Stripe does not know it (SPEC §2:
    an id that names nothing the key can see is a 404)."""
    client = get_stripe_client()
    with stripe_errors_as_unavailable("checkout.sessions.retrieve"):
        try:
            return client.v1.checkout.sessions.retrieve(checkout_session_id)
        except stripe.InvalidRequestError as error:
            raise _unknown("checkoutSessionId", f"Unknown checkout session '{checkout_session_id}'.") from error


def stripe_subscription_get(*, stripe_subscription_id: str, field_name: str = "stripeSubscriptionId") -> Any:
    """The subscription from Stripe (current state); 404 when Stripe does not know it."""
    client = get_stripe_client()
    with stripe_errors_as_unavailable("subscriptions.retrieve"):
        try:
            return client.v1.subscriptions.retrieve(stripe_subscription_id)
        except stripe.InvalidRequestError as error:
            raise _unknown(field_name, f"Unknown Stripe subscription '{stripe_subscription_id}'.") from error


def _unknown(field_name: str, message: str) -> NotFound:
    # Stripe answers 404 for an id it does not have and 400 for one it cannot
    # even parse: either way the id names nothing.
    return NotFound(message, details={"field": field_name})


def checkout_session_require_complete(session: Any) -> str:
    """The subscription id of a completed subscription-mode session, else a
    400 that says what is wrong with the session."""
    status = session.get("status")
    if status == "expired":
        raise BadRequest.for_field("checkoutSessionId", "This checkout session has expired; start a new checkout.")
    if status != "complete":
        raise BadRequest.for_field(
            "checkoutSessionId",
            f"This checkout session is not complete yet (status '{status}'); claim it after payment.",
        )
    subscription_id = stripe_objects.object_id(session.get("subscription"))
    if not subscription_id:
        raise BadRequest.for_field("checkoutSessionId", "This checkout session did not create a subscription.")
    return subscription_id


# --- writes ----------------------------------------------------------------------


def billing_profile_ensure(*, company: Company, product_id, stripe_customer_id: str) -> BillingProfile:
    """The billing profile of the company's account with `product_id` for
    this Stripe customer, created if missing. 409 if the account is billed to
    another customer, or the customer bills another account (one customer ↔
    one account). The 409 names only this account's own customer id, never
    another product's or company's (SPEC §2)."""
    profile = BillingProfile.objects.filter(company=company, product_id=product_id).first()
    if profile is not None:
        if profile.stripe_customer_id != stripe_customer_id:
            raise Conflict(
                "This company is already billed to another Stripe customer in this product.",
                details={"stripeCustomerId": profile.stripe_customer_id},
            )
        return profile
    if BillingProfile.objects.filter(stripe_customer_id=stripe_customer_id).exists():
        raise Conflict("This Stripe customer is already linked to another account.")
    try:
        with transaction.atomic():
            return BillingProfile.objects.create(
                company=company, product_id=product_id, stripe_customer_id=stripe_customer_id
            )
    except IntegrityError as error:
        raise Conflict("This Stripe customer is already linked to another account.") from error


def company_access_sync(*, company: Company, product_id, actor: Actor, reason: str) -> list[str]:
    """Make the company's subscription-granted access in this product follow
    its subscriptions: the tier of the newest granting subscription, else the
    product's default tier. Returns the feature codes applied."""
    granting = (
        Subscription.objects.filter(
            company=company, product_id=product_id, status__in=GRANTING_STATUSES, tier__isnull=False
        )
        .select_related("tier")
        .order_by("-created_at")
        .first()
    )
    tier = granting.tier if granting else tier_default_get(product_id=product_id)
    if tier is None:
        return []
    result = tier_apply(company=company, tier=tier, actor=actor, reason=reason)
    return list(result.features_applied)


def company_billing_periods_push(*, company_id) -> None:
    """Tell metering the periods of the company's subscriptions that grant
    access (its `billing_period` meters follow them). Call after any change
    to a subscription's status or period."""
    periods = Subscription.objects.filter(
        company_id=company_id,
        status__in=GRANTING_STATUSES,
        current_period_start__isnull=False,
        current_period_end__isnull=False,
    ).values_list("current_period_start", "current_period_end")
    billing_periods_set(company_id=company_id, periods=list(periods))


def subscription_sync(
    *,
    company: Company,
    product_id,
    stripe_subscription: Any,
    tier: Tier | None = None,
    display_name: str | None = None,
    checkout_session_id: str | None = None,
    actor: Actor,
    reason: str,
) -> SubscriptionSyncResult:
    """Create or update the local mirror of `stripe_subscription` (its current
    state, as just read from Stripe) for `company`, and re-apply the company's
    tier when what the subscriptions grant changed. Call inside a transaction."""
    stripe_id = stripe_subscription["id"]
    price_ids = stripe_objects.subscription_price_ids(stripe_subscription)
    if tier is None:
        tier = tier_resolve(product_id=product_id, price_ids=price_ids, metadata=stripe_subscription.get("metadata"))
    period_start, period_end = stripe_objects.subscription_period(stripe_subscription)
    status = stripe_subscription.get("status") or SubscriptionStatus.INCOMPLETE
    if status not in SubscriptionStatus.values:
        logger.warning("unknown stripe subscription status", extra={"status": status})
        status = SubscriptionStatus.INCOMPLETE
    values = {
        "stripe_customer_id": stripe_objects.object_id(stripe_subscription.get("customer")) or "",
        "status": status,
        "current_period_start": period_start,
        "current_period_end": period_end,
        "cancel_at_period_end": bool(stripe_subscription.get("cancel_at_period_end")),
        "canceled_at": stripe_objects.timestamp(stripe_subscription.get("canceled_at")),
        "trial_end": stripe_objects.timestamp(stripe_subscription.get("trial_end")),
        "price_ids": price_ids,
        "items": stripe_objects.subscription_items_summary(stripe_subscription),
    }
    local = Subscription.objects.select_for_update().filter(stripe_subscription_id=stripe_id).first()
    if local is not None and local.company_id != company.pk:
        raise Conflict("This Stripe subscription is already linked to another company.")
    created = local is None
    if created:
        before = (False, None)
        local = Subscription(
            company=company,
            product_id=product_id,
            stripe_subscription_id=stripe_id,
            tier=tier,
            display_name=display_name or stripe_objects.subscription_display_name(stripe_subscription)
            or (tier.name if tier else ""),
            checkout_session_id=checkout_session_id,
            **values,
        )
    else:
        before = (local.grants_access, local.tier_id)
        for name, value in values.items():
            setattr(local, name, value)
        if tier is not None:
            local.tier = tier
        if display_name:
            local.display_name = display_name
        if checkout_session_id and not local.checkout_session_id:
            local.checkout_session_id = checkout_session_id
    try:
        with transaction.atomic():
            local.save()
    except IntegrityError as error:
        raise Conflict("This checkout session or subscription is already linked to another company.") from error
    features_applied: list[str] = []
    if (local.grants_access, local.tier_id) != before:
        features_applied = company_access_sync(company=company, product_id=product_id, actor=actor, reason=reason)
    company_billing_periods_push(company_id=company.pk)
    return SubscriptionSyncResult(subscription=local, created=created, features_applied=features_applied)


def checkout_claim(*, product_id, company_id, checkout_session_id: str, actor: Actor) -> CheckoutClaimResult:
    """Attach a completed Stripe checkout session (and its subscription and
    customer) to a company of this product and apply the subscription's tier.
    400 unknown/expired/incomplete session; 409 claimed by another company;
    the same company again → already_claimed, nothing changes."""
    company = company_get_visible(product_id=product_id, company_id=company_id)
    existing = _claimed_subscription(checkout_session_id=checkout_session_id)
    if existing is not None:
        return _already_claimed(existing, company=company, product_id=product_id)
    session = stripe_checkout_session_get(checkout_session_id=checkout_session_id)
    stripe_subscription_id = checkout_session_require_complete(session)
    stripe_subscription = stripe_subscription_get(stripe_subscription_id=stripe_subscription_id)
    return checkout_claim_apply(
        company=company, product_id=product_id, session=session, stripe_subscription=stripe_subscription, actor=actor
    )


def checkout_claim_apply(
    *, company: Company, product_id, session: Any, stripe_subscription: Any, actor: Actor
) -> CheckoutClaimResult:
    """The write half of `checkout_claim`, for a session and subscription
    already read from Stripe (also used by onboarding and the webhook)."""
    checkout_session_id = session["id"]
    tier_code = _metadata_tier_code(session.get("metadata"))
    tier = tier_resolve(
        product_id=product_id,
        price_ids=stripe_objects.subscription_price_ids(stripe_subscription),
        metadata={**dict(stripe_subscription.get("metadata") or {}), **({"tier_code": tier_code} if tier_code else {})},
    )
    customer_id = stripe_objects.object_id(session.get("customer")) or stripe_objects.object_id(
        stripe_subscription.get("customer")
    )
    try:
        with transaction.atomic():
            Company.objects.select_for_update().filter(pk=company.pk).first()
            # Re-checked under the company lock: two concurrent claims of one
            # session by the same company must not both apply it.
            existing = _claimed_subscription(checkout_session_id=checkout_session_id)
            if existing is not None:
                return _already_claimed(existing, company=company, product_id=product_id)
            if customer_id:
                billing_profile_ensure(company=company, product_id=product_id, stripe_customer_id=customer_id)
            result = subscription_sync(
                company=company,
                product_id=product_id,
                stripe_subscription=stripe_subscription,
                tier=tier,
                checkout_session_id=checkout_session_id,
                actor=actor,
                reason=f"Stripe checkout {checkout_session_id} claimed",
            )
            if result.subscription.checkout_session_id != checkout_session_id:
                # The subscription was linked before, through another session.
                raise Conflict(
                    "This checkout session's subscription is already linked through another checkout session."
                )
    except IntegrityError as error:
        existing = _claimed_subscription(checkout_session_id=checkout_session_id)
        if existing is not None:
            return _already_claimed(existing, company=company, product_id=product_id)
        raise Conflict("This checkout session was already claimed by another company.") from error
    return CheckoutClaimResult(
        subscription=result.subscription, already_claimed=False, features_applied=result.features_applied
    )


def subscription_link(
    *,
    product_id,
    company_id,
    stripe_subscription_id: str,
    stripe_customer_id: str | None = None,
    tier_code: str | None = None,
    display_name: str | None = None,
    actor: Actor,
) -> SubscriptionLinkResult:
    """Link an existing Stripe subscription to a company of this product (the
    customer is read from Stripe when not given) and apply its tier (`tier_code`
    overrides price-id resolution). Linking it again to the same company →
    already_linked, nothing changes; to another company → 409."""
    company = company_get_visible(product_id=product_id, company_id=company_id)
    tier = tier_resolve(product_id=product_id, price_ids=[], tier_code=tier_code) if tier_code else None
    existing = Subscription.objects.filter(stripe_subscription_id=stripe_subscription_id).first()
    if existing is not None:
        if existing.company_id != company.pk or existing.product_id != product_id:
            raise Conflict("This Stripe subscription is already linked to another company.")
        return SubscriptionLinkResult(subscription=existing, already_linked=True, features_applied=[])
    stripe_subscription = stripe_subscription_get(stripe_subscription_id=stripe_subscription_id)
    return subscription_link_apply(
        company=company,
        product_id=product_id,
        stripe_subscription=stripe_subscription,
        stripe_customer_id=stripe_customer_id,
        tier=tier,
        display_name=display_name,
        actor=actor,
    )


def subscription_link_apply(
    *,
    company: Company,
    product_id,
    stripe_subscription: Any,
    stripe_customer_id: str | None,
    tier: Tier | None,
    display_name: str | None,
    actor: Actor,
) -> SubscriptionLinkResult:
    """The write half of `subscription_link` for a subscription already read from Stripe."""
    actual_customer = stripe_objects.object_id(stripe_subscription.get("customer"))
    if stripe_customer_id and actual_customer and stripe_customer_id != actual_customer:
        raise BadRequest.for_field("stripeCustomerId", "This subscription belongs to another Stripe customer.")
    customer_id = actual_customer or stripe_customer_id
    with transaction.atomic():
        Company.objects.select_for_update().filter(pk=company.pk).first()
        existing = Subscription.objects.filter(stripe_subscription_id=stripe_subscription["id"]).first()
        if existing is not None:
            if existing.company_id != company.pk:
                raise Conflict("This Stripe subscription is already linked to another company.")
            return SubscriptionLinkResult(subscription=existing, already_linked=True, features_applied=[])
        if customer_id:
            billing_profile_ensure(company=company, product_id=product_id, stripe_customer_id=customer_id)
        result = subscription_sync(
            company=company,
            product_id=product_id,
            stripe_subscription=stripe_subscription,
            tier=tier,
            display_name=display_name,
            actor=actor,
            reason=f"Stripe subscription {stripe_subscription['id']} linked",
        )
    return SubscriptionLinkResult(
        subscription=result.subscription, already_linked=False, features_applied=result.features_applied
    )


def subscription_refresh(*, subscription: Subscription, stripe_subscription: Any, actor: Actor, reason: str):
    """Bring a linked subscription up to date with Stripe's current state."""
    with transaction.atomic():
        return subscription_sync(
            company=subscription.company,
            product_id=subscription.product_id,
            stripe_subscription=stripe_subscription,
            actor=actor,
            reason=reason,
        )


# --- helpers ---------------------------------------------------------------------


def _claimed_subscription(*, checkout_session_id: str) -> Subscription | None:
    return Subscription.objects.select_related("tier").filter(checkout_session_id=checkout_session_id).first()


def _already_claimed(existing: Subscription, *, company: Company, product_id) -> CheckoutClaimResult:
    if existing.company_id != company.pk or existing.product_id != product_id:
        raise Conflict("This checkout session was already claimed by another company.")
    return CheckoutClaimResult(subscription=existing, already_claimed=True, features_applied=[])


def _metadata_tier_code(metadata: Any) -> str | None:
    for key in ("tier_code", "tierCode", "tier"):
        value = (metadata or {}).get(key)
        if value:
            return str(value)
    return None


def subscription_mark_ended(*, subscription: Subscription, actor: Actor, reason: str) -> list[str]:
    """Stripe no longer knows the subscription (deleted object): treat it as canceled."""
    with transaction.atomic():
        locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
        was_granting = locked.grants_access
        locked.status = SubscriptionStatus.CANCELED
        locked.canceled_at = locked.canceled_at or timezone.now()
        locked.save(update_fields=["status", "canceled_at", "updated_at"])
        company_billing_periods_push(company_id=locked.company_id)
        if was_granting:
            return company_access_sync(
                company=locked.company, product_id=locked.product_id, actor=actor, reason=reason
            )
    return []
