"""Starting, changing, cancelling and resuming Stripe subscriptions from
SaaSDesk (API and admin). Stripe is called first, outside any transaction;
the local mirror and the company's tier are then updated in one transaction
with the company row locked (`subscription_sync`), so a Stripe failure
leaves nothing half-made here. Every write to Stripe uses
`payment_behavior=error_if_incomplete`: a refused card is a 402 and Stripe
keeps nothing either. If Stripe did it but the answer was lost (a
timeout), the same Idempotency-Key replays it, and the
`customer.subscription.*` webhook links it in any case."""

from __future__ import annotations

from typing import Any

import stripe
from django.db import transaction

from billing.models import Subscription, SubscriptionStatus
from billing.selectors import subscription_get_visible
from billing.stripe_client import card_errors_as_payment_required, get_stripe_client, stripe_errors_as_unavailable
from companies.models import Company, Product
from config.errors import BadRequest, Conflict
from companies.actors import Actor
from entitlements.models import Tier, TierFeature

from . import stripe_objects
from .customers import payment_method_of_customer, stripe_customer_ensure, stripe_idempotency_key
from .subscriptions import SubscriptionSyncResult, subscription_sync
from .tiers import tier_get_by_code

PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")
_ENDED = (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED)


def tier_stripe_price_ids(*, tier: Tier) -> list[str]:
    """The Stripe prices a subscription to `tier` consists of: its base fee,
    then its features' prices (each once, in a stable order)."""
    price_ids = [tier.base_fee_stripe_price_id] if tier.base_fee_stripe_price_id else []
    feature_prices = (
        TierFeature.objects.filter(tier=tier)
        .exclude(stripe_price_id="")
        .order_by("feature__code")
        .values_list("stripe_price_id", flat=True)
    )
    for price_id in feature_prices:
        if price_id not in price_ids:
            price_ids.append(price_id)
    return price_ids


def _tier_with_prices(*, product_id, tier_code: str) -> tuple[Tier, list[str]]:
    tier = tier_get_by_code(product_id=product_id, tier_code=tier_code)
    price_ids = tier_stripe_price_ids(tier=tier)
    if not price_ids:
        raise Conflict(f"Tier '{tier_code}' has no Stripe prices to subscribe to.", details={"tierCode": tier_code})
    return tier, price_ids


def _stripe_call(operation: str, call):
    """Run a Stripe write: outage → 503, refused card → 402, a reused
    Idempotency-Key with other parameters → 409, Stripe's other refusals (no
    payment method yet, …) → 409 with Stripe's message (stripe_errors_as_unavailable):
    the input was valid, the company's billing state is not ready for it."""
    with stripe_errors_as_unavailable(operation), card_errors_as_payment_required():
        try:
            return call()
        except stripe.IdempotencyError as error:
            raise Conflict("This Idempotency-Key was already used with other parameters.") from error


def _sync(*, company: Company, product_id, stripe_subscription: Any, tier: Tier | None, actor: Actor, reason: str) -> SubscriptionSyncResult:
    """Mirror what Stripe answered and apply the tier, the company row locked
    (the lock every subscription write of a company takes first)."""
    with transaction.atomic():
        Company.objects.select_for_update().filter(pk=company.pk).first()
        return subscription_sync(
            company=company,
            product_id=product_id,
            stripe_subscription=stripe_subscription,
            tier=tier,
            actor=actor,
            reason=reason,
        )


def subscription_create(
    *,
    product_id,
    company_id,
    tier_code: str,
    idempotency_key: str,
    trial_period_days: int | None = None,
    payment_method_id: str | None = None,
    reason: str | None = None,
    actor: Actor,
) -> SubscriptionSyncResult:
    """Subscribe the company to a tier in Stripe (the tier's base fee and
    feature prices), charged to `payment_method_id` or the customer's default
    card, then link and apply it like `link-subscription`. The same
    `idempotency_key` returns the same subscription."""
    customer = stripe_customer_ensure(product_id=product_id, company_id=company_id, actor=actor)
    company = customer.profile.company
    tier, price_ids = _tier_with_prices(product_id=product_id, tier_code=tier_code)
    if payment_method_id:
        payment_method_of_customer(
            stripe_customer_id=customer.stripe_customer_id, payment_method_id=payment_method_id, field="paymentMethodId"
        )
    product_code = Product.objects.only("code").get(pk=product_id).code
    params: dict[str, Any] = {
        "customer": customer.stripe_customer_id,
        "items": [{"price": price_id} for price_id in price_ids],
        "payment_behavior": "error_if_incomplete",
        "metadata": {"company_id": str(company.pk), "product": product_code, "tier_code": tier.code},
    }
    if trial_period_days:
        params["trial_period_days"] = trial_period_days
    if payment_method_id:
        params["default_payment_method"] = payment_method_id
    client = get_stripe_client()
    key = stripe_idempotency_key("subscription.create", product_id, company.pk, idempotency_key)
    stripe_subscription = _stripe_call(
        "subscription.create", lambda: client.v1.subscriptions.create(params, {"idempotency_key": key})
    )
    return _sync(
        company=company,
        product_id=product_id,
        stripe_subscription=stripe_subscription,
        tier=tier,
        actor=actor,
        reason=f"Subscribed to {tier.code} in Stripe" + (f": {reason}" if reason else ""),
    )


def _sync_linked(subscription: Subscription, stripe_subscription: Any, *, tier: Tier | None = None, actor: Actor, reason: str):
    return _sync(company=subscription.company, product_id=subscription.product_id,
                 stripe_subscription=stripe_subscription, tier=tier, actor=actor, reason=reason)


def _retrieve(subscription: Subscription) -> Any:
    client = get_stripe_client()
    return _stripe_call(
        "subscription.retrieve", lambda: client.v1.subscriptions.retrieve(subscription.stripe_subscription_id)
    )


def _require_not_ended(subscription: Subscription) -> None:
    if subscription.status in _ENDED:
        raise Conflict(f"This subscription is {subscription.status}; start a new one instead.")


def subscription_change(
    *,
    product_id,
    subscription_id,
    tier_code: str,
    proration_behavior: str = "create_prorations",
    reason: str | None = None,
    actor: Actor,
) -> SubscriptionSyncResult:
    """Move a subscription to another tier: its Stripe items are swapped to
    the new tier's prices (kept where the price stays), prorated as asked,
    and the new tier is applied."""
    if proration_behavior not in PRORATION_BEHAVIORS:
        raise BadRequest.for_field("prorationBehavior", f"One of {', '.join(PRORATION_BEHAVIORS)}.")
    subscription = subscription_get_visible(product_id=product_id, subscription_id=subscription_id)
    _require_not_ended(subscription)
    tier, new_price_ids = _tier_with_prices(product_id=product_id, tier_code=tier_code)
    current = _retrieve(subscription)
    items = stripe_objects.subscription_items(current)
    kept = {stripe_objects.object_id(item.get("price")) for item in items} & set(new_price_ids)
    removed = [item for item in items if stripe_objects.object_id(item.get("price")) not in kept]
    added = [price_id for price_id in new_price_ids if price_id not in kept]
    # Swap in place where possible (Stripe prorates a swapped item as one
    # change), then delete or add what is left over.
    operations: list[dict[str, Any]] = [{"id": item["id"], "price": price} for item, price in zip(removed, added)]
    operations += [{"id": item["id"], "deleted": True} for item in removed[len(added):]]
    operations += [{"price": price} for price in added[len(removed):]]
    params: dict[str, Any] = {
        "proration_behavior": proration_behavior,
        "payment_behavior": "error_if_incomplete",
        "metadata": {"tier_code": tier.code},
    }
    if operations:
        params["items"] = operations
    client = get_stripe_client()
    updated = _stripe_call(
        "subscription.update", lambda: client.v1.subscriptions.update(subscription.stripe_subscription_id, params)
    )
    return _sync_linked(subscription, updated, tier=tier, actor=actor,
                        reason=f"Tier changed to {tier.code}" + (f": {reason}" if reason else ""))


def subscription_cancel(*, product_id, subscription_id, at_period_end: bool = True, reason: str, actor: Actor) -> SubscriptionSyncResult:
    """Cancel at the end of the paid period (access stays until then) or now
    (access falls back to the product's default tier at once)."""
    subscription = subscription_get_visible(product_id=product_id, subscription_id=subscription_id)
    _require_not_ended(subscription)
    client = get_stripe_client()
    details = {"comment": reason[:500]}
    if at_period_end:
        result = _stripe_call(
            "subscription.update",
            lambda: client.v1.subscriptions.update(
                subscription.stripe_subscription_id, {"cancel_at_period_end": True, "cancellation_details": details}
            ),
        )
    else:
        result = _stripe_call(
            "subscription.cancel",
            lambda: client.v1.subscriptions.cancel(subscription.stripe_subscription_id, {"cancellation_details": details}),
        )
    return _sync_linked(subscription, result, actor=actor,
                        reason=f"Canceled {'at period end' if at_period_end else 'now'}: {reason}")


def subscription_resume(*, product_id, subscription_id, reason: str | None = None, actor: Actor) -> SubscriptionSyncResult:
    """Undo a pending cancel at period end. 409 when none is pending (as Stripe
    sees it now)."""
    subscription = subscription_get_visible(product_id=product_id, subscription_id=subscription_id)
    _require_not_ended(subscription)
    current = _retrieve(subscription)
    if not current.get("cancel_at_period_end") and not current.get("cancel_at"):
        _sync_linked(subscription, current, actor=actor, reason="Stripe state re-read")
        raise Conflict("No cancellation is pending on this subscription.")
    client = get_stripe_client()
    result = _stripe_call(
        "subscription.update",
        lambda: client.v1.subscriptions.update(
            subscription.stripe_subscription_id, {"cancel_at_period_end": False}
        ),
    )
    return _sync_linked(subscription, result, actor=actor,
                        reason="Pending cancellation undone" + (f": {reason}" if reason else ""))
