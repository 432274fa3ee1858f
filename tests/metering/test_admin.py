"""Usage in the back office: read-only lists, the company usage panel and
chart, and the *Adjust usage…* action."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse
from django.utils import timezone

from companies.roles import BILLING_ADMIN, SUPPORT
from metering.models import UsageEvent, UsageMeter, UsageSnapshot
from metering.services import usage_track

pytestmark = pytest.mark.django_db


@pytest.fixture
def usage(product, company, access):
    """Some usage over the last days, one event backdated 3 days."""
    usage_track(product_id=product.id, company_id=company.id, feature_code="ai_credit", quantity=7, idempotency_key="idem-42")
    usage_track(
        product_id=product.id,
        company_id=company.id,
        feature_code="ai_credit",
        quantity=5,
        timestamp=timezone.now() - timedelta(days=3),
    )
    return company


def staff(role: str | None = None, *perms: str) -> User:
    user = User.objects.create_user(username=f"staff-{role or 'none'}", password="pw", is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def adjust(client, company, **form):
    return client.post(
        reverse("admin:companies_company_changelist"),
        {"action": "metering_adjust_usage", ACTION_CHECKBOX_NAME: [str(company.pk)], **form},
        follow=True,
    )


class TestReadOnlyLists:
    def test_usage_event_list_filters_and_search(self, admin_client, usage):
        url = reverse("admin:metering_usageevent_changelist")
        response = admin_client.get(url)
        assert response.status_code == 200
        assert response.context["cl"].result_count == 2
        for params in (
            {"event_type__exact": "increment"},
            {"source__exact": "api"},
            {"feature__id__exact": str(UsageEvent.objects.first().feature_id)},
            {"company__id__exact": str(usage.pk)},
        ):
            assert admin_client.get(url, params).context["cl"].result_count == 2, params
        assert admin_client.get(url, {"q": "idem-42"}).context["cl"].result_count == 1
        # 7 of the 10 included are free; the next 5 make 2 billable.
        assert admin_client.get(url, {"stripe_delivery_status__exact": "pending"}).context["cl"].result_count == 1
        assert admin_client.get(url, {"event_type__exact": "set"}).context["cl"].result_count == 0
        assert response.context["cl"].show_full_result_count is False

    def test_events_cannot_be_added_changed_or_deleted(self, admin_client, usage):
        event = UsageEvent.objects.first()
        assert admin_client.get(reverse("admin:metering_usageevent_add")).status_code == 403
        detail = admin_client.get(reverse("admin:metering_usageevent_change", args=[event.pk]))
        assert detail.status_code == 200
        assert b'name="_save"' not in detail.content
        assert b"Audit: who, when, old" in detail.content
        assert admin_client.post(reverse("admin:metering_usageevent_delete", args=[event.pk])).status_code == 403
        assert UsageEvent.objects.count() == 2

    @pytest.mark.parametrize("model", ["usagemeter", "usagesnapshot"])
    def test_meters_and_snapshots_are_read_only(self, admin_client, usage, model):
        UsageSnapshot.objects.create(
            company=usage, feature=UsageMeter.objects.first().feature, meter=UsageMeter.objects.first(),
            absolute_value=1, billable_value=0, snapshot_type="set", reason="r",
        )
        assert admin_client.get(reverse(f"admin:metering_{model}_changelist")).status_code == 200
        assert admin_client.get(reverse(f"admin:metering_{model}_add")).status_code == 403


class TestCompanyPage:
    def test_usage_panel_and_chart(self, admin_client, usage):
        response = admin_client.get(reverse("admin:companies_company_change", args=[usage.pk]))
        assert response.status_code == 200
        html = response.content.decode()
        assert 'id="usage-panel"' in html
        assert 'data-feature="ai_credit"' in html
        # Current period (both events fall in it unless the test runs in the
        # first three days of a month) against the limit of 100.
        assert "usage-limit\">100<" in html
        # Charts by day, week and month from the rollups, drawn by unfold's bundled Chart.js (no CDN).
        assert 'class="usage-chart ' in html and html.count('data-type="bar"') >= 3
        assert "cdn" not in html.lower()
        import html as html_module
        import json
        import re

        days = [json.loads(html_module.unescape(value)) for value in re.findall(r'data-value="([^"]+)"', html)]
        by_day = next(chart for chart in days if len(chart["labels"]) == 30)
        points = dict(zip(by_day["labels"], by_day["datasets"][0]["data"]))
        assert points[timezone.now().strftime("%d %b")] == 7
        assert points[(timezone.now() - timedelta(days=3)).strftime("%d %b")] == 5
        assert sum(by_day["datasets"][0]["data"]) == 12
        assert "usage (open periods)" not in html.lower()  # one usage table: the panel's

    def test_panel_is_hidden_without_view_permission(self, client, usage):
        client.force_login(staff(None, "companies.view_company"))
        html = client.get(reverse("admin:companies_company_change", args=[usage.pk])).content.decode()
        assert 'id="usage-panel"' not in html
        assert 'id="usage-dimensions-panel"' not in html

    def test_dimension_breakdown_and_peak_hours(self, admin_client, product, company, access):
        from entitlements.models import Feature

        Feature.objects.filter(product=product, code="ai_credit").update(dimensions=["model"])
        at_ten = (timezone.now() - timedelta(days=1)).replace(hour=10, minute=15)
        for model, quantity in (("gpt-4o", 6), ("gpt-4o", 3), ("claude", 2)):
            usage_track(product_id=product.id, company_id=company.id, feature_code="ai_credit", quantity=quantity,
                        timestamp=at_ten, metadata={"model": model})
        usage_track(product_id=product.id, company_id=company.id, feature_code="ai_credit", quantity=1,
                    timestamp=at_ten.replace(hour=3))

        html = admin_client.get(reverse("admin:companies_company_change", args=[company.pk])).content.decode()

        assert 'id="usage-dimensions-panel"' in html and 'data-dimension="model"' in html
        rows = html.split('data-dimension="model"')[1].split("</table>")[0]
        assert rows.index("gpt-4o") < rows.index("claude") < rows.index("(not set)")  # most frequent first
        assert "<td>9 credit</td>" in rows
        assert "Peak hour: <strong>10:00–11:00 UTC</strong>" in html
        assert "10h: 11 credit" in html and "03h: 1 credit" in html


class TestAdjustAction:
    def test_intermediate_form_then_delta(self, admin_client, admin_user, usage):
        page = adjust(admin_client, usage)
        assert page.status_code == 200
        assert b"adjust-usage-form" in page.content
        feature_id = UsageMeter.objects.first().feature_id

        done = adjust(admin_client, usage, apply="yes", feature=str(feature_id), mode="delta", value="-4", reason="Refund")
        assert done.status_code == 200
        assert "usage 12 → 8" in done.content.decode()
        event = UsageEvent.objects.get(event_type="adjustment")
        assert (event.source, event.performed_by, event.adjustment_reason) == ("admin", admin_user.username, "Refund")
        assert (event.actor_kind, event.actor_id) == ("user", str(admin_user.pk))
        assert (event.previous_value, event.new_value) == (12, 8)

    def test_set_to_writes_a_snapshot_and_may_pass_the_limit(self, admin_client, usage):
        feature_id = UsageMeter.objects.first().feature_id
        adjust(admin_client, usage, apply="yes", feature=str(feature_id), mode="set", value="250", reason="Import")
        assert UsageMeter.objects.get(closed_at__isnull=True, period_end__gt=timezone.now()).value == 250
        snapshot = UsageSnapshot.objects.get()
        assert (snapshot.snapshot_type, snapshot.reason, snapshot.absolute_value) == ("set", "Import", 250)

    @pytest.mark.parametrize(
        ("form", "message"),
        [
            ({"mode": "delta", "value": "0", "reason": "x"}, "must not be 0"),
            ({"mode": "set", "value": "-1", "reason": "x"}, "below 0"),
            ({"mode": "delta", "value": "3", "reason": ""}, "This field is required"),
            ({"mode": "delta", "value": "-100", "reason": "x"}, "cannot go below 0"),
        ],
    )
    def test_invalid_adjustments_change_nothing(self, admin_client, usage, form, message):
        feature_id = UsageMeter.objects.first().feature_id
        response = adjust(admin_client, usage, apply="yes", feature=str(feature_id), **form)
        assert message in response.content.decode()
        assert UsageEvent.objects.count() == 2

    def test_needs_the_adjust_usage_permission(self, client, usage):
        client.force_login(staff(None, "companies.view_company", "companies.change_company", "metering.view_usagemeter"))
        feature_id = UsageMeter.objects.first().feature_id
        response = adjust(client, usage, apply="yes", feature=str(feature_id), mode="delta", value="1", reason="x")
        assert UsageEvent.objects.count() == 2
        # The action is not even offered to someone without the permission (docs/admin.md).
        assert response.status_code in (200, 302)
        changelist = client.get(reverse("admin:companies_company_changelist")).content.decode()
        assert 'value="metering_adjust_usage"' not in changelist

    def test_support_role_may_adjust(self, client, usage):
        user = staff(SUPPORT)
        assert user.has_perm("metering.adjust_usage")
        assert staff(BILLING_ADMIN).has_perm("metering.adjust_usage")
        client.force_login(user)
        feature_id = UsageMeter.objects.first().feature_id
        adjust(client, usage, apply="yes", feature=str(feature_id), mode="delta", value="1", reason="Goodwill")
        assert UsageEvent.objects.filter(event_type="adjustment", performed_by=user.username).exists()


def test_meter_links_to_its_events(admin_client, usage):
    meter = UsageMeter.objects.order_by("-period_start").first()
    html = admin_client.get(reverse("admin:metering_usagemeter_change", args=[meter.pk])).content.decode()
    assert f"?meter__id__exact={meter.pk}" in html
    events = admin_client.get(reverse("admin:metering_usageevent_changelist"), {"meter__id__exact": str(meter.pk)})
    assert events.context["cl"].result_count == UsageEvent.objects.filter(meter=meter).count()


class TestAdminQueryCounts:
    def test_the_adjust_usage_page_reads_usage_of_all_companies_in_a_fixed_number_of_queries(
        self, admin_client, product, feature, django_assert_max_num_queries
    ):
        """The intermediate page shows each selected company's usage: one
        bulk read, not a read per company (issue 9, item 11)."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from tests.factories.companies import CompanyFactory, ProductLinkFactory
        from tests.factories.entitlements import FeatureAccessFactory

        companies = []
        for index in range(12):
            company = CompanyFactory(name=f"Company {index:02d}")
            ProductLinkFactory(product=product, company=company)
            FeatureAccessFactory(company=company, feature=feature, quantity_limit=100)
            usage_track(product_id=product.id, company_id=company.id, feature_code="ai_credit", quantity=index + 1)
            companies.append(company)

        def page(selected):
            return admin_client.post(
                reverse("admin:companies_company_changelist"),
                {"action": "metering_adjust_usage", ACTION_CHECKBOX_NAME: [str(c.pk) for c in selected]},
            )

        with CaptureQueriesContext(connection) as two:
            assert page(companies[:2]).status_code == 200
        with django_assert_max_num_queries(len(two)):
            response = page(companies)
        assert response.status_code == 200
        assert b"Company 11" in response.content

