"""Reconcile delivered usage with Stripe's meter event summaries for a window."""

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from billing.services.reconciliation import default_window, meters_reconcile


def _day(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as error:
        raise CommandError(f"Not a date (YYYY-MM-DD): {value}") from error


class Command(BaseCommand):
    help = "Compare delivered usage with Stripe's meter summaries (default: yesterday, UTC) and record drift."

    def add_arguments(self, parser):
        parser.add_argument("--start", help="Window start date, YYYY-MM-DD (UTC).")
        parser.add_argument("--end", help="Window end date, YYYY-MM-DD (UTC, exclusive).")

    def handle(self, *args, start=None, end=None, **options):
        window_start, window_end = default_window()
        if start:
            window_start = _day(start)
        if end:
            window_end = _day(end)
        result = meters_reconcile(window_start=window_start, window_end=window_end)
        if not result.configured:
            self.stdout.write("Stripe is not configured (set STRIPE_API_KEY).")
            return
        self.stdout.write(
            f"checked={result.checked} drifting={result.drifting} resolved={result.resolved} errors={result.errors}"
        )
