"""Mirror every Stripe invoice of every billed customer (backfill; the invoice webhooks keep it current)."""

from django.core.management.base import BaseCommand, CommandError

from billing.services.invoices import invoices_sync
from companies.models import Product
from config.errors import ApplicationError


class Command(BaseCommand):
    help = ("Read the invoices of every Stripe customer SaaSDesk bills (optionally one product) and mirror them; "
            "a paid cycle invoice whose credits were never granted grants them now. Prints the counts.")

    def add_arguments(self, parser):
        parser.add_argument("--product", help="Product code: only its customers.")

    def handle(self, *args, product=None, **options):
        product_id = None
        if product:
            found = Product.objects.filter(code=product).first()
            if found is None:
                raise CommandError(f"Unknown product {product!r}.")
            product_id = found.pk
        try:
            counts = invoices_sync(product_id=product_id)
        except ApplicationError as error:  # not configured, Stripe unreachable
            raise CommandError(error.message) from error
        self.stdout.write(" ".join(f"{name}={value}" for name, value in counts.items()))
