"""Customer pools and accounts (SPEC §2), step 2: the data.

- every product's pool is its code (each product a pool of its own);
- a company lives in the pool of the product of its earliest link (none:
  no pool yet; it joins the pool of the first product it is linked to);
- each (company, product) pair that has a link gets an account holding the
  company's metadata, status and MRR as they were;
- `match_name` is the normalised name smart link compares with.

Backwards, a company takes back the values of its oldest account."""

from django.db import migrations

BATCH = 1000


def forwards(apps, schema_editor):
    from companies.names import normalize_company_name

    Product = apps.get_model("companies", "Product")
    Company = apps.get_model("companies", "Company")
    ProductLink = apps.get_model("companies", "ProductLink")
    Account = apps.get_model("companies", "Account")

    pool_of_product = {}
    for product in Product.objects.all():
        product.customer_pool = product.customer_pool or product.code
        product.save(update_fields=["customer_pool"])
        pool_of_product[product.pk] = product.customer_pool

    first_product_of = {}
    pairs = set()
    for company_id, product_id in ProductLink.objects.order_by("created_at", "pk").values_list(
        "company_id", "product_id"
    ):
        first_product_of.setdefault(company_id, product_id)
        pairs.add((company_id, product_id))

    companies = list(Company.objects.only("id", "name", "customer_pool", "match_name", "metadata", "status", "mrr"))
    values_of = {}
    for company in companies:
        product_id = first_product_of.get(company.pk)
        company.customer_pool = pool_of_product[product_id] if product_id else ""
        company.match_name = normalize_company_name(company.name)
        values_of[company.pk] = (company.metadata or {}, company.status, company.mrr)
    Company.objects.bulk_update(companies, ["customer_pool", "match_name"], batch_size=BATCH)

    accounts = []
    for company_id, product_id in sorted(pairs, key=str):
        metadata, status, mrr = values_of[company_id]
        accounts.append(
            Account(company_id=company_id, product_id=product_id, metadata=dict(metadata), status=status, mrr=mrr)
        )
    Account.objects.bulk_create(accounts, batch_size=BATCH, ignore_conflicts=True)


def backwards(apps, schema_editor):
    Company = apps.get_model("companies", "Company")
    Account = apps.get_model("companies", "Account")
    for account in Account.objects.order_by("-created_at"):
        # Oldest last: it wins.
        Company.objects.filter(pk=account.company_id).update(
            metadata=account.metadata, status=account.status, mrr=account.mrr
        )


class Migration(migrations.Migration):
    dependencies = [("companies", "0005_customer_pools_accounts")]

    operations = [migrations.RunPython(forwards, backwards)]
