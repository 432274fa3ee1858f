"""manage.py dump_catalog PRODUCT — write a product's catalog as JSON in the
format load_catalog reads (dump then load is a no-op)."""

import json

from django.core.management.base import BaseCommand, CommandError

from companies.models import Product
from entitlements.catalog import catalog_dump


class Command(BaseCommand):
    help = "Write a product's features and tiers as a catalog JSON document."

    def add_arguments(self, parser):
        parser.add_argument("product", help="Product code.")
        parser.add_argument("-o", "--output", help="Write to this file instead of stdout.")

    def handle(self, *args, **options):
        product = Product.objects.filter(code=options["product"]).first()
        if product is None:
            raise CommandError(f"unknown product {options['product']!r}")
        text = json.dumps(catalog_dump(product=product), indent=2, ensure_ascii=False) + "\n"
        if options["output"]:
            try:
                with open(options["output"], "w", encoding="utf-8") as handle:
                    handle.write(text)
            except OSError as error:
                raise CommandError(f"{options['output']}: cannot write ({error})") from None
        else:
            self.stdout.write(text, ending="")
