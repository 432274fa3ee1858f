"""Factories for usage rows. Features and access come from
tests.factories.entitlements (MeteredFeatureFactory, FeatureAccessFactory)."""

import factory

from metering.models import UsageMeter

from .companies import CompanyFactory
from .entitlements import MeteredFeatureFactory


class UsageMeterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageMeter

    company = factory.SubFactory(CompanyFactory)
    feature = factory.SubFactory(MeteredFeatureFactory)
    value = 0
