"""`manage.py create_service_credential --product CODE --service NAME` prints
only the new secret on stdout; it cannot be shown again."""

from django.core.management.base import BaseCommand, CommandError

from companies.models import Product
from companies.services import service_credential_create


class Command(BaseCommand):
    help = "Create an HMAC service credential for a product and print its secret once (only the secret)."

    def add_arguments(self, parser):
        parser.add_argument("--product", required=True, help="Product code, e.g. chat")
        parser.add_argument("--service", required=True, help="Service name sent as X-Service-Name, e.g. ai-worker")

    def handle(self, *args, product: str, service: str, **options):
        found = Product.objects.filter(code=product).first()
        if found is None:
            known = ", ".join(Product.objects.values_list("code", flat=True)) or "none yet"
            raise CommandError(f"Unknown product '{product}' (known: {known}).")
        try:
            _, secret = service_credential_create(product=found, service_name=service)
        except Exception as error:  # BadRequest: a bad service name
            raise CommandError(getattr(error, "message", str(error))) from None
        self.stdout.write(secret)
