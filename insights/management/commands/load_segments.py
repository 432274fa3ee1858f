"""manage.py load_segments FILE — upsert segments from JSON (SPEC §8):
`[{product, slug, name, type, criteria, parent?, description?}]`. Idempotent;
one transaction; a bad file names the offending path and changes nothing."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from config.management.json_file import json_file_read
from insights.criteria import SegmentError
from insights.services import segments_load


class Command(BaseCommand):
    help = "Load (upsert) segments from a JSON file; run sync_segments afterwards to fill them."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the segments JSON file ('-' for stdin).")

    def handle(self, *args, **options):
        path = options["file"]
        data = json_file_read(path)
        try:
            result = segments_load(data=data)
        except SegmentError as error:
            raise CommandError(f"{path}: invalid segments, nothing was changed:\n" + "\n".join(error.errors)) from None
        except DatabaseError as error:
            raise CommandError(f"{path}: the database refused the segments, nothing was changed ({error})") from None
        self.stdout.write(result.summary())
