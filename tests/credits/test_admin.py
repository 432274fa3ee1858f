"""Credits in the back office: the wallet panel, Grant credits… with a
preview, Freeze/Unfreeze (Billing admin), read-only lists, service credentials."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, User
from django.urls import reverse

from companies.models import ServiceCredential
from companies.roles import BILLING_ADMIN, SUPPORT
from credits.models import LedgerEntry, Wallet

pytestmark = pytest.mark.django_db


def staff(role: str) -> User:
    user = User.objects.create_user(username=f"staff-{role}".replace(" ", "-"), password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def act(client, company, action, **form):
    return client.post(
        reverse("admin:companies_company_changelist"),
        {"action": action, ACTION_CHECKBOX_NAME: [str(company.pk)], **form},
        follow=True,
    )


def test_company_page_shows_the_wallet(admin_client, company, grant, product):
    grant(40, bucket="subscription", reason="Cycle")
    grant(10, bucket="topup", reason="Top-up")
    html = admin_client.get(reverse("admin:companies_company_change", args=[company.pk])).content.decode()
    assert 'id="credits-panel"' in html
    assert 'class="wallet-total">50<' in html
    assert html.count('class="ledger-row"') == 2 and html.count('class="wallet-lot"') == 2


def test_grant_previews_then_grants_once(admin_client, company, product, grant):
    grant(5)
    form = {"apply": "yes", "product": str(product.pk), "amount": "20", "bucket": "promotional", "reason": "Goodwill"}
    preview = act(admin_client, company, "credits_grant_action", **form)
    assert 'class="balance-after">25<' in preview.content.decode()
    assert LedgerEntry.objects.count() == 1
    done = act(admin_client, company, "credits_grant_action", confirmed="yes", **form)
    assert "granted 20 promotional credits; balance 25" in done.content.decode()
    entry = LedgerEntry.objects.get(reason="Goodwill")
    assert entry.actor == "user:admin"
    again = act(admin_client, company, "credits_grant_action", confirmed="yes", **form)
    assert "already granted for this reason" in again.content.decode()


def test_grant_needs_a_reason(admin_client, company, product):
    form = {"apply": "yes", "product": str(product.pk), "amount": "20", "bucket": "promotional", "reason": "",
            "confirmed": "yes"}
    response = act(admin_client, company, "credits_grant_action", **form)
    assert "This field is required" in response.content.decode()
    assert not LedgerEntry.objects.exists()


def test_support_grants_but_may_not_freeze(client, company, product, wallet):
    client.force_login(staff(SUPPORT))
    form = {"apply": "yes", "product": str(product.pk), "amount": "3", "bucket": "promotional", "reason": "Sorry",
            "confirmed": "yes"}
    act(client, company, "credits_grant_action", **form)
    assert LedgerEntry.objects.filter(reason="Sorry").exists()
    act(client, company, "credits_freeze_action", apply="yes", product=str(product.pk), reason="x")
    assert not Wallet.objects.get().frozen
    # Not even offered to Support (an action registered with a permission, docs/admin.md).
    changelist = client.get(reverse("admin:companies_company_changelist")).content.decode()
    assert 'value="credits_freeze_action"' not in changelist


def test_billing_admin_freezes_and_unfreezes_with_a_reason(client, company, product, wallet):
    client.force_login(staff(BILLING_ADMIN))
    act(client, company, "credits_freeze_action", apply="yes", product=str(product.pk), reason="Chargeback")
    wallet.refresh_from_db()
    assert wallet.frozen and wallet.frozen_reason == "Chargeback"
    act(client, company, "credits_unfreeze_action", apply="yes", product=str(product.pk), reason="Resolved")
    wallet.refresh_from_db()
    assert not wallet.frozen


def test_ledger_list_is_read_only_with_filters(admin_client, wallet):
    url = reverse("admin:credits_ledgerentry_changelist")
    assert admin_client.get(url + "?kind__exact=grant").context["cl"].result_count == 1
    entry = LedgerEntry.objects.get()
    assert admin_client.post(reverse("admin:credits_ledgerentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:credits_ledgerentry_add")).status_code == 403


def test_service_credential_shown_once_and_revocable(admin_client, product):
    response = admin_client.post(
        reverse("admin:companies_servicecredential_add"), {"product": str(product.pk), "service_name": "ai-worker"}
    )
    credential = ServiceCredential.objects.get()
    assert credential.secret in response.content.decode()
    page = admin_client.get(reverse("admin:companies_servicecredential_change", args=[credential.pk])).content.decode()
    assert credential.secret not in page
    admin_client.post(
        reverse("admin:companies_servicecredential_changelist"),
        {"action": "revoke_selected", ACTION_CHECKBOX_NAME: [str(credential.pk)]},
    )
    credential.refresh_from_db()
    assert credential.revoked_at is not None


def test_support_never_sees_service_credentials(client, product):
    client.force_login(staff(SUPPORT))
    assert client.get(reverse("admin:companies_servicecredential_changelist")).status_code == 403


def test_set_low_balance_threshold(admin_client, company, product, wallet):
    act(admin_client, company, "credits_threshold_action", apply="yes", product=str(product.pk),
        low_balance_threshold="25", reason="Customer asked")
    wallet.refresh_from_db()
    assert wallet.low_balance_threshold == 25
    assert wallet.events.get().reason == "Customer asked"
