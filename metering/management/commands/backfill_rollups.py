"""`manage.py backfill_rollups [--company ID]`: (re)compute the daily usage
rollups from the usage events (for events written before rollups existed, or
to repair them). Exact while tracks go on; see `rollups_rebuild`."""

from __future__ import annotations

import uuid

from django.core.management.base import BaseCommand, CommandError

from metering.services import rollups_rebuild


class Command(BaseCommand):
    help = "Recompute daily usage rollups from the usage events (all companies, or one)."

    def add_arguments(self, parser):
        parser.add_argument("--company", help="Only this company id.")

    def handle(self, *args, company=None, **options):
        company_id = None
        if company:
            try:
                company_id = uuid.UUID(company)
            except ValueError:
                raise CommandError(f"--company: {company!r} is not a company id.") from None
        rows = rollups_rebuild(company_id=company_id)
        self.stdout.write(f"{rows} daily rollup rows written.")
