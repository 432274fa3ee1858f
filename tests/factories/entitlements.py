import factory

from entitlements.models import AccessSource, Feature, FeatureAccess, FeatureKind, ResetPeriod, Tier, TierFeature
from tests.factories.companies import CompanyFactory, ProductFactory


class FeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Feature

    product = factory.SubFactory(ProductFactory)
    code = factory.Sequence(lambda n: f"feature_{n}")
    name = factory.LazyAttribute(lambda o: o.code.replace("_", " ").title())
    kind = FeatureKind.BOOLEAN


class MeteredFeatureFactory(FeatureFactory):
    kind = FeatureKind.METERED
    unit = "credit"
    reset_period = ResetPeriod.MONTHLY


class ConfigFeatureFactory(FeatureFactory):
    kind = FeatureKind.CONFIG
    default_config = factory.LazyFunction(lambda: {"maxSeats": 3})


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier

    product = factory.SubFactory(ProductFactory)
    code = factory.Sequence(lambda n: f"tier_{n}")
    name = factory.LazyAttribute(lambda o: o.code.title())


class TierFeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TierFeature

    tier = factory.SubFactory(TierFactory)
    feature = factory.SubFactory(FeatureFactory, product=factory.SelfAttribute("..tier.product"))


class FeatureAccessFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FeatureAccess

    company = factory.SubFactory(CompanyFactory)
    feature = factory.SubFactory(FeatureFactory)
    valid_from = None
    valid_until = None
    # A plain row is the tier layer; a row with a window is a manual override.
    source = factory.LazyAttribute(
        lambda row: AccessSource.MANUAL if row.valid_from or row.valid_until else AccessSource.SUBSCRIPTION
    )
    # A hand-set row (any source but subscription) is an override setting all
    # four fields over no tier layer — what the migration of issue 14 makes
    # of the rows set by hand before access layers.
    tier_granted = factory.LazyAttribute(lambda row: row.source == AccessSource.SUBSCRIPTION)
    overrides = factory.LazyAttribute(
        lambda row: {}
        if row.source == AccessSource.SUBSCRIPTION
        else {
            "is_enabled": row.is_enabled,
            "quantity_limit": row.quantity_limit,
            "included_quantity": row.included_quantity,
            "config": row.config,
        }
    )
    is_enabled = True
    quantity_limit = None
    included_quantity = 0
    config = factory.LazyFunction(dict)
