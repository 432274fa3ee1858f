"""`manage.py demo_setup`, the data behind the README's first command."""

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from companies.api_keys import hash_key
from companies.models import ApiKey, Company, Contact, Product, ProductLink
from entitlements.models import FeatureAccess
from metering.models import UsageEvent
from notifications.models import Event, WebhookEndpoint

pytestmark = pytest.mark.django_db


def _run(*args) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command(*args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


class TestDemoSetup:
    def test_creates_demo_data_and_prints_credentials_once(self):
        stdout, _ = _run("demo_setup")
        assert Product.objects.filter(code="chat").exists()
        assert Company.objects.count() >= 20
        assert ProductLink.objects.filter(product__code="chat").count() >= 20
        assert Contact.objects.filter(is_primary=True).count() == Company.objects.count()
        globex = Company.objects.get(domain="globex.de")
        assert (globex.country, globex.size, globex.timezone) == ("DE", "enterprise", "Europe/Berlin")
        assert globex.accounts.get(product__code="chat").billing_email == "billing@globex.de"
        assert ProductLink.objects.filter(product__code="crm", link_type="smart", confidence__gte=90).exists()
        assert "http://127.0.0.1:8000/admin/" in stdout and "/api/v1/docs/" in stdout
        password = next(line.split()[-1] for line in stdout.splitlines() if "Password:" in line)
        raw_key = next(line.split()[2] for line in stdout.splitlines() if "API key:" in line)
        admin = User.objects.get(username="admin")
        assert admin.is_superuser and admin.check_password(password)
        assert ApiKey.objects.get(key_hash=hash_key(raw_key)).product.code == "chat"
        assert FeatureAccess.objects.filter(source="subscription", tier__isnull=False).exists()
        # A month of usage for the charts, some of it refused by the free tier's limit.
        assert UsageEvent.objects.filter(company__links__external_org_id="org_acme").count() > 30
        # AI credits by model and platform (the catalog's dimensions), hour by hour.
        from metering.models import UsageDimensionRollup, UsageHourlyRollup

        assert {"model", "platform"} == set(UsageDimensionRollup.objects.values_list("dimension", flat=True))
        assert UsageHourlyRollup.objects.values("hour__hour").distinct().count() > 5
        # Two products in one customer pool: the CRM app shares some of the chat app's companies.
        assert set(Product.objects.values_list("customer_pool", flat=True)) == {"demo-customers"}
        acme = ProductLink.objects.get(product__code="chat", external_org_id="org_acme").company
        assert ProductLink.objects.filter(product__code="crm", company=acme).exists()
        assert sorted(acme.accounts.values_list("product__code", flat=True)) == ["chat", "crm"]
        # Wallets with a month of history, and a credit-priced feature in the catalog.
        from credits.models import LedgerEntry, Wallet
        from credits.verify import credits_verify
        from entitlements.models import Feature

        assert Wallet.objects.count() >= 5 and credits_verify() == {}
        assert LedgerEntry.objects.filter(kind="usage").count() > 50
        assert LedgerEntry.objects.filter(kind="refund").exists()
        assert Feature.objects.get(code="ai_image").credit_cost == 5
        # A webhook endpoint (its secret printed once) and the events the data caused.
        endpoint = WebhookEndpoint.objects.get(product__code="chat")
        assert endpoint.secret in stdout
        assert Event.objects.filter(type="usage.threshold_reached").exists()
        assert Event.objects.filter(type="feature_access.changed").exists()

    def test_running_twice_adds_no_companies_and_rotates_credentials(self):
        first, _ = _run("demo_setup")
        companies = Company.objects.count()
        contacts = Contact.objects.count()
        events = UsageEvent.objects.count()
        from credits.models import LedgerEntry

        entries = LedgerEntry.objects.count()
        second, _ = _run("demo_setup")
        assert Company.objects.count() == companies and Contact.objects.count() == contacts
        assert UsageEvent.objects.count() == events
        assert LedgerEntry.objects.count() == entries
        assert WebhookEndpoint.objects.count() == 1 and "Webhooks:" not in second
        assert first != second
        assert User.objects.filter(username="admin").count() == 1
