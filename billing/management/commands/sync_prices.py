"""Mirror every Stripe price into SaaSDesk (backfill; the price webhooks keep it current)."""

from django.core.management.base import BaseCommand, CommandError

from billing.services.prices import prices_sync_all
from config.errors import ApplicationError


class Command(BaseCommand):
    help = "Read every price from Stripe (with its product) and mirror it; prints the counts."

    def add_arguments(self, parser):
        parser.add_argument("--active-only", action="store_true", help="Skip archived prices.")

    def handle(self, *args, active_only: bool, **options):
        try:
            counts = prices_sync_all(active_only=active_only)
        except ApplicationError as error:  # not configured, Stripe unreachable
            raise CommandError(error.message) from error
        self.stdout.write(f"created={counts.created} updated={counts.updated} unchanged={counts.unchanged}")
