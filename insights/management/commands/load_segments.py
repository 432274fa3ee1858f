"""manage.py load_segments FILE — upsert segments from JSON (SPEC §8):
`[{product, slug, name, type, criteria, parent?, description?}]`. Idempotent;
one transaction; a bad file names the offending path and changes nothing."""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from insights.criteria import SegmentError
from insights.services import segments_load


class Command(BaseCommand):
    help = "Load (upsert) segments from a JSON file; run sync_segments afterwards to fill them."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the segments JSON file ('-' for stdin).")

    def handle(self, *args, **options):
        path = options["file"]
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"{path}: cannot read the file ({error})") from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:
            where = f" at line {error.lineno} column {error.colno}: {error.msg}" if isinstance(error, json.JSONDecodeError) else ""
            raise CommandError(f"{path}: invalid JSON{where}") from None
        try:
            result = segments_load(data=data)
        except SegmentError as error:
            raise CommandError(f"{path}: invalid segments, nothing was changed:\n" + "\n".join(error.errors)) from None
        except DatabaseError as error:
            raise CommandError(f"{path}: the database refused the segments, nothing was changed ({error})") from None
        self.stdout.write(result.summary())
