import factory

from companies.models import Account, Company, Contact, Product, ProductLink


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
        skip_postgeneration_save = True

    product = factory.SubFactory(ProductFactory)
    company = factory.SubFactory(CompanyFactory)
    external_org_id = factory.Sequence(lambda n: f"org_{n}")

    @factory.post_generation
    def account(link, create, extracted, **kwargs):
        """As companies.services.link_insert: the company joins the product's
        pool if it has none, and gets its account with the product."""
        if not create:
            return
        if not link.company.customer_pool:
            link.company.customer_pool = link.product.customer_pool
            link.company.save(update_fields=["customer_pool"])
        Account.objects.get_or_create(company=link.company, product=link.product, defaults=kwargs)


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account
        django_get_or_create = ("company", "product")

    company = factory.SubFactory(CompanyFactory)
    product = factory.SubFactory(ProductFactory)
