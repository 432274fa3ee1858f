"""*Merge into…* in the admin (SPEC §9: Billing admin only; an intermediate
form with a required reason that says what will change) and the tombstone
shown on the merged company's page."""

import pytest
from django.urls import reverse

from companies.models import Company, Contact
from desk.models import CompanyMerge
from tests.entitlements.roles import staff_user
from tests.factories.companies import CompanyFactory, ContactFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(product):
    kept = CompanyFactory(name="Globex Corporation", short_id="globex", domain="globex.com")
    duplicate = CompanyFactory(name="Globex Corp", short_id="globex-2", domain="globex.com")
    ProductLinkFactory(product=product, company=kept, external_org_id="org_globex")
    ProductLinkFactory(product=product, company=duplicate, external_org_id="org_globex_import")
    ContactFactory(company=duplicate, email="hank@globex.com", is_primary=True)
    return kept, duplicate


def _url(company):
    return reverse("admin:companies_company_action", args=[company.pk, "desk_merge_action"])


def test_billing_admin_previews_then_merges(client, pair):
    kept, duplicate = pair
    client.force_login(staff_user("Billing admin", "bea"))
    page = client.get(reverse("admin:companies_company_change", args=[duplicate.pk])).content.decode()
    assert "Merge into…" in page
    form = client.get(_url(duplicate)).content.decode()
    assert 'id="merge-company-form"' in form and '<option value="globex">' in form  # a suggestion

    no_reason = client.post(_url(duplicate), {"preview": "yes", "into": "globex", "reason": " "})
    assert no_reason.status_code == 200 and "This field is required." in no_reason.content.decode()
    itself = client.post(_url(duplicate), {"preview": "yes", "into": "globex-2", "reason": "dupe"})
    assert "cannot be merged into itself" in itself.content.decode()

    preview = client.post(_url(duplicate), {"preview": "yes", "into": "globex", "reason": "Import duplicate"})
    text = preview.content.decode()
    assert 'id="merge-preview"' in text and "contacts move" in text and "product links move" in text
    assert not Company.objects.get(pk=duplicate.pk).merged_into_id  # the preview changed nothing

    done = client.post(_url(duplicate), {"confirm": "yes", "into": "globex", "reason": "Import duplicate"})
    assert done.status_code == 302 and done.url == reverse("admin:companies_company_change", args=[kept.pk])
    assert Company.objects.get(pk=duplicate.pk).merged_into_id == kept.pk
    assert Contact.objects.filter(company=kept, email="hank@globex.com").exists()
    record = CompanyMerge.objects.get()
    assert record.actor == "user:bea" and record.reason == "Import duplicate"

    tombstone = client.get(reverse("admin:companies_company_change", args=[duplicate.pk])).content.decode()
    assert 'id="company-tombstone"' in tombstone and "Globex Corporation" in tombstone and "Import duplicate" in tombstone
    assert "Merge into…" not in tombstone  # a tombstone has no action buttons
    again = client.post(_url(duplicate), {"preview": "yes", "into": "globex", "reason": "x"})
    assert again.status_code == 302  # back with "already merged"
    kept_page = client.get(reverse("admin:companies_company_change", args=[kept.pk])).content.decode()
    assert 'id="company-merges"' in kept_page and "Globex Corp" in kept_page
    assert "<td>Globex Corp</td>" in kept_page  # the rows are HTML, not escaped text


def test_support_cannot_merge(client, pair):
    kept, duplicate = pair
    client.force_login(staff_user("Support", "sam"))
    page = client.get(reverse("admin:companies_company_change", args=[duplicate.pk])).content.decode()
    assert "Merge into…" not in page
    refused = client.post(_url(duplicate), {"confirm": "yes", "into": "globex", "reason": "x"})
    assert refused.status_code == 403
    assert not Company.objects.get(pk=duplicate.pk).merged_into_id
    # Support sees the merge records
    assert client.get(reverse("admin:desk_companymerge_changelist")).status_code == 200
