"""`manage.py create_api_key --product CODE --name NAME` prints only the new
key on stdout (so scripts can capture it); it cannot be shown again."""

from django.core.management.base import BaseCommand, CommandError

from companies.models import Product
from companies.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a product and print it once (only the key, on stdout)."

    def add_arguments(self, parser):
        parser.add_argument("--product", required=True, help="Product code, e.g. chat")
        parser.add_argument("--name", required=True, help="What the key is for, e.g. 'chat backend'")

    def handle(self, *args, product: str, name: str, **options):
        name = name.strip()
        if not name:
            raise CommandError("--name must not be empty.")
        found = Product.objects.filter(code=product).first()
        if found is None:
            known = ", ".join(Product.objects.values_list("code", flat=True)) or "none yet"
            raise CommandError(f"Unknown product '{product}' (known: {known}).")
        _, raw_key = api_key_create(product=found, name=name[:200])
        self.stdout.write(raw_key)
