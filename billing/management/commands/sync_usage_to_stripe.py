"""One delivery pass in the foreground: what the `billing.deliver_usage` task does."""

from django.core.management.base import BaseCommand

from billing.services.delivery import deliver_pending_usage


class Command(BaseCommand):
    help = "Deliver pending usage events to Stripe meters once and print the counts."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=100, help="Events claimed per transaction.")
        parser.add_argument("--max-batches", type=int, default=None, help="Stop after this many batches.")

    def handle(self, *args, batch_size: int, max_batches: int | None, **options):
        result = deliver_pending_usage(batch_size=batch_size, max_batches=max_batches, worker="manage.py")
        if not result.configured:
            self.stdout.write("Stripe is not configured (set STRIPE_API_KEY); pending usage keeps waiting.")
            return
        if result.stopped:
            self.stderr.write("Stripe refused the API key (check STRIPE_API_KEY); the remaining usage keeps waiting.")
        self.stdout.write(
            f"delivered={result.delivered} retry_scheduled={result.retry_scheduled} "
            f"failed={result.failed} requests={result.requests}"
        )
