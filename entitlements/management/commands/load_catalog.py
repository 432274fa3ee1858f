"""manage.py load_catalog FILE — upsert a product's features and tiers from
a JSON catalog (SPEC §4). Idempotent; one transaction; a bad file names the
offending path and changes nothing."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from config.management.json_file import json_file_read
from entitlements.catalog import CatalogError, catalog_load


class Command(BaseCommand):
    help = "Load (upsert) a product catalog of features and tiers from a JSON file."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the catalog JSON file ('-' for stdin).")

    def handle(self, *args, **options):
        path = options["file"]
        data = json_file_read(path)
        try:
            result = catalog_load(data=data)
        except CatalogError as error:
            raise CommandError(f"{path}: invalid catalog, nothing was changed:\n" + "\n".join(error.errors)) from None
        except DatabaseError as error:
            raise CommandError(f"{path}: the database refused the catalog, nothing was changed ({error})") from None
        self.stdout.write(result.summary())
