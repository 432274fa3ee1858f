"""`manage.py suspend_account PRODUCT EXTERNAL_ORG_ID --reason "…" [--reactivate]`:
suspend (or reactivate) a company's account with a product from the shell
(`desk.services`; the demo data uses it)."""

from django.core.management.base import BaseCommand, CommandError

from companies.models import ProductLink
from desk.services import account_reactivate, account_suspend


class Command(BaseCommand):
    help = "Suspend (or reactivate) a company's account with one product."

    def add_arguments(self, parser):
        parser.add_argument("product", help="product code")
        parser.add_argument("external_org_id", help="the product's own id of the company")
        parser.add_argument("--reason", required=True)
        parser.add_argument("--reactivate", action="store_true")

    def handle(self, *args, **options):
        link = (
            ProductLink.objects.filter(product__code=options["product"], external_org_id=options["external_org_id"])
            .select_related("company")
            .first()
        )
        if link is None:
            raise CommandError("No company with that external org id in that product.")
        action = account_reactivate if options["reactivate"] else account_suspend
        change = action(company=link.company, product_id=link.product_id, reason=options["reason"], actor="system:shell")
        self.stdout.write(f"{link.company.name}: {change.previous_status} → {change.status}")
