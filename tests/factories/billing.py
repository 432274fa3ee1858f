import factory

from billing.models import BillingProfile, StripeWebhookEvent, Subscription, SubscriptionStatus
from tests.factories.companies import CompanyFactory, ProductFactory


class BillingProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BillingProfile

    company = factory.SubFactory(CompanyFactory)
    # Billing is per account: by default the product of the company's first link.
    product = factory.LazyAttribute(
        lambda o: getattr(o.company.links.order_by("created_at").first(), "product", None) or ProductFactory(code="chat")
    )
    stripe_customer_id = factory.Sequence(lambda n: f"cus_test{n:08d}")


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    company = factory.SubFactory(CompanyFactory)
    product = factory.SubFactory(ProductFactory)
    stripe_subscription_id = factory.Sequence(lambda n: f"sub_test{n:08d}")
    stripe_customer_id = factory.Sequence(lambda n: f"cus_test{n:08d}")
    status = SubscriptionStatus.ACTIVE


class StripeWebhookEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StripeWebhookEvent

    stripe_event_id = factory.Sequence(lambda n: f"evt_test{n:08d}")
    type = "customer.subscription.updated"
    payload = factory.LazyAttribute(lambda o: {"id": o.stripe_event_id, "type": o.type, "data": {"object": {}}})
