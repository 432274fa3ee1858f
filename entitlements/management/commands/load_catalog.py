"""manage.py load_catalog FILE — upsert a product's features and tiers from
a JSON catalog (SPEC §4). Idempotent; one transaction; a bad file names the
offending path and changes nothing."""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from entitlements.catalog import CatalogError, catalog_load


class Command(BaseCommand):
    help = "Load (upsert) a product catalog of features and tiers from a JSON file."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the catalog JSON file ('-' for stdin).")

    def handle(self, *args, **options):
        path = options["file"]
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"{path}: cannot read the file ({error})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
        try:
            result = catalog_load(data=data)
        except CatalogError as error:
            raise CommandError(f"{path}: invalid catalog, nothing was changed:\n" + "\n".join(error.errors)) from None
        except DatabaseError as error:
            raise CommandError(f"{path}: the database refused the catalog, nothing was changed ({error})") from None
        self.stdout.write(result.summary())
