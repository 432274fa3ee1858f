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
    source = AccessSource.MANUAL
