import factory

from companies.models import Company, Contact, Product, ProductLink


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"product-{n}")
    name = factory.LazyAttribute(lambda o: o.code.title())


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company

    name = factory.Sequence(lambda n: f"Company {n}")
    short_id = factory.Sequence(lambda n: f"company-{n}")
    domain = factory.Sequence(lambda n: f"company{n}.example.com")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    company = factory.SubFactory(CompanyFactory)
    email = factory.Sequence(lambda n: f"person{n}@example.com")
    name = factory.Sequence(lambda n: f"Person {n}")


class ProductLinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductLink

    product = factory.SubFactory(ProductFactory)
    company = factory.SubFactory(CompanyFactory)
    external_org_id = factory.Sequence(lambda n: f"org_{n}")
