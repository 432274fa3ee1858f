"""manage.py sync_segments [--product CODE] — bring segment membership up to
date now (the `sync_segments` job does it on a schedule), with
`segment.entered` / `segment.left` notifications. Idempotent."""

from django.core.management.base import BaseCommand, CommandError

from companies.models import Product
from insights.services import segments_sync


class Command(BaseCommand):
    help = "Sync the membership of every segment (or one product's) now."

    def add_arguments(self, parser):
        parser.add_argument("--product", help="Only this product's segments (its code).")

    def handle(self, *args, **options):
        product_id = None
        if options.get("product"):
            product_id = Product.objects.filter(code=options["product"]).values_list("id", flat=True).first()
            if product_id is None:
                raise CommandError(f"unknown product {options['product']!r}")
        for result in segments_sync(product_id=product_id):
            self.stdout.write(f"{result.product}/{result.slug}: {result.members} members ({result.entered} entered, {result.left} left)")
