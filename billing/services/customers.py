"""A company's Stripe customer in a product, its cards (SetupIntents,
payment methods, the default one). The product collects card details in its
own page with Stripe.js and the SetupIntent's client secret; SaaSDesk never
sees a card number and logs nothing about a card."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import stripe
from django.db import transaction

from billing.models import BillingProfile
from billing.selectors import billing_profile_for
from billing.stripe_client import (
    card_errors_as_payment_required,
    get_stripe_client,
    stripe_errors_as_unavailable,
)
from companies.models import Company, Product
from companies.selectors import company_get_visible
from config.errors import NotFound
from companies.actors import Actor

from . import stripe_objects
from .subscriptions import billing_profile_ensure


@dataclass(frozen=True)
class CustomerEnsureResult:
    profile: BillingProfile
    created: bool

    @property
    def stripe_customer_id(self) -> str:
        return self.profile.stripe_customer_id


@dataclass(frozen=True)
class SetupIntentResult:
    setup_intent_id: str
    client_secret: str
    stripe_customer_id: str


@dataclass(frozen=True)
class PaymentMethodInfo:
    id: str
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None
    is_default: bool


def stripe_idempotency_key(*parts: Any) -> str:
    """A Stripe Idempotency-Key derived from what makes a request unique:
    a retry (ours, a worker's, the product's) sends the same key, so Stripe
    replays its first answer instead of doing it twice."""
    return "saasdesk-" + hashlib.sha256("|".join(str(part) for part in parts).encode()).hexdigest()[:48]


def stripe_customer_ensure(
    *, product_id, company_id, email: str | None = None, name: str | None = None, actor: Actor
) -> CustomerEnsureResult:
    """The company's Stripe customer for this product, created at Stripe (and
    linked) when it has none. The Stripe call carries an idempotency key of
    (product, company), so a retry after a timeout finds the customer Stripe
    made instead of making a second one."""
    company = company_get_visible(product_id=product_id, company_id=company_id)
    profile = billing_profile_for(company_id=company.pk, product_id=product_id)
    if profile is not None:
        return CustomerEnsureResult(profile=profile, created=False)
    product = Product.objects.only("code").get(pk=product_id)
    params: dict[str, Any] = {
        "name": name or company.name,
        "metadata": {"company_id": str(company.pk), "product": product.code},
    }
    if email:
        params["email"] = email
    client = get_stripe_client()
    with stripe_errors_as_unavailable("customer.create"):
        customer = client.v1.customers.create(
            params, {"idempotency_key": stripe_idempotency_key("customer", product_id, company.pk)}
        )
    # Concurrent calls get the same customer from Stripe (same idempotency
    # key); the company lock lets exactly one of them link it.
    with transaction.atomic():
        Company.objects.select_for_update().filter(pk=company.pk).first()
        existing = billing_profile_for(company_id=company.pk, product_id=product_id)
        if existing is not None:
            return CustomerEnsureResult(profile=existing, created=False)
        profile = billing_profile_ensure(company=company, product_id=product_id, stripe_customer_id=customer["id"])
    return CustomerEnsureResult(profile=profile, created=True)


def _require_customer(*, product_id, company_id) -> tuple[Company, BillingProfile]:
    company = company_get_visible(product_id=product_id, company_id=company_id)
    profile = billing_profile_for(company_id=company.pk, product_id=product_id)
    if profile is None:
        raise NotFound(
            "This company has no Stripe customer in this product yet (POST /billing/customers).",
            details={"companyId": str(company.pk)},
        )
    return company, profile


def setup_intent_create(*, product_id, company_id, actor: Actor) -> SetupIntentResult:
    """A SetupIntent for saving a card for off-session use; the product
    confirms it with Stripe.js. The Stripe customer is created first if needed."""
    customer = stripe_customer_ensure(product_id=product_id, company_id=company_id, actor=actor)
    client = get_stripe_client()
    with stripe_errors_as_unavailable("setup_intent.create"):
        intent = client.v1.setup_intents.create(
            {
                "customer": customer.stripe_customer_id,
                "usage": "off_session",
                "payment_method_types": ["card"],
                "metadata": {"company_id": str(company_id)},
            }
        )
    return SetupIntentResult(
        setup_intent_id=intent["id"], client_secret=intent["client_secret"], stripe_customer_id=customer.stripe_customer_id
    )


def payment_method_of_customer(*, stripe_customer_id: str, payment_method_id: str, field: str | None = None) -> Any:
    """The payment method, if it belongs to this customer. Otherwise a 404
    (naming `field` in `details` when it came in the body): another customer's
    card is as unknown as a missing one (SPEC §2: an id that names nothing
    visible to the key is a 404)."""
    client = get_stripe_client()
    with stripe_errors_as_unavailable("payment_method.retrieve"):
        try:
            payment_method = client.v1.payment_methods.retrieve(payment_method_id)
        except stripe.InvalidRequestError:
            # Missing, or not even a payment method id: either way it names nothing.
            payment_method = None
    if payment_method is None or stripe_objects.object_id(payment_method.get("customer")) != stripe_customer_id:
        raise NotFound("Unknown payment method for this company.", details={"field": field} if field else None)
    return payment_method


def default_payment_method_id(client, stripe_customer_id: str) -> str | None:
    with stripe_errors_as_unavailable("customer.retrieve"):
        customer = client.v1.customers.retrieve(stripe_customer_id)
    settings = customer.get("invoice_settings") or {}
    return stripe_objects.object_id(settings.get("default_payment_method"))


def payment_methods_list(*, product_id, company_id) -> list[PaymentMethodInfo]:
    """The company's saved cards (oldest first), the default one flagged.
    No Stripe customer yet → an empty list."""
    company = company_get_visible(product_id=product_id, company_id=company_id)
    profile = billing_profile_for(company_id=company.pk, product_id=product_id)
    if profile is None:
        return []
    client = get_stripe_client()
    default_id = default_payment_method_id(client, profile.stripe_customer_id)
    with stripe_errors_as_unavailable("payment_method.list"):
        listed = client.v1.payment_methods.list({"customer": profile.stripe_customer_id, "type": "card", "limit": 100})
        methods = list(listed.auto_paging_iter())
    infos = [_payment_method_info(method, default_id) for method in methods]
    return sorted(infos, key=lambda info: info.id)


def _payment_method_info(method: Any, default_id: str | None) -> PaymentMethodInfo:
    card = method.get("card") or {}
    return PaymentMethodInfo(
        id=method["id"],
        brand=str(card.get("brand") or method.get("type") or ""),
        last4=str(card.get("last4") or ""),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
        is_default=method["id"] == default_id,
    )


def payment_method_set_default(*, product_id, company_id, payment_method_id: str, actor: Actor) -> PaymentMethodInfo:
    """Make one of the company's cards the default for invoices and renewals."""
    _company, profile = _require_customer(product_id=product_id, company_id=company_id)
    method = payment_method_of_customer(
        stripe_customer_id=profile.stripe_customer_id, payment_method_id=payment_method_id, field="paymentMethodId"
    )
    client = get_stripe_client()
    with stripe_errors_as_unavailable("customer.update"), card_errors_as_payment_required():
        client.v1.customers.update(
            profile.stripe_customer_id, {"invoice_settings": {"default_payment_method": payment_method_id}}
        )
    return _payment_method_info(method, payment_method_id)


def payment_method_detach(*, product_id, company_id, payment_method_id: str, actor: Actor) -> None:
    """Remove a saved card from the company's customer (Stripe forgets it as
    the default too)."""
    _company, profile = _require_customer(product_id=product_id, company_id=company_id)
    payment_method_of_customer(stripe_customer_id=profile.stripe_customer_id, payment_method_id=payment_method_id)
    client = get_stripe_client()
    with stripe_errors_as_unavailable("payment_method.detach"):
        client.v1.payment_methods.detach(payment_method_id)
