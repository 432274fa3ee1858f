"""POST /onboard: every branch, idempotence, and all-or-nothing."""

from __future__ import annotations

import pytest

from billing.models import BillingProfile, Subscription
from companies.models import Company, Contact, ProductLink
from tests.billing.conftest import access_of, completed_checkout, open_checkout

pytestmark = pytest.mark.django_db


def onboard(api, **body):
    return api.post("/api/v1/onboard", body, format="json")


def billing_status(**values) -> dict:
    """The full billingStatus: yes/no booleans and the fields naming things (SPEC §6)."""
    return {
        "claimed": False, "linked": False, "tierApplied": False, "tierCode": None,
        "subscriptionId": None, "stripeSubscriptionId": None, **values,
    }


def test_creates_company_link_contact_and_applies_the_default_tier(api, product, catalog):
    response = onboard(
        api,
        externalOrgId="org_new",
        hints={"companyName": "Initech GmbH", "domain": "https://www.initech.io/about"},
        contactEmail="Peter@Initech.io",
        contactName="Peter",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["linkStatus"] == "created"
    assert body["companyName"] == "Initech GmbH"
    assert body["shortId"]
    assert body["billingStatus"] == billing_status(tierApplied=True, tierCode="free")
    company = Company.objects.get(pk=body["companyId"])
    assert company.domain == "initech.io"
    assert ProductLink.objects.get(product=product, external_org_id="org_new").company == company
    assert Contact.objects.get(company=company).email == "peter@initech.io"
    assert access_of(company, catalog.ai_credit).quantity_limit == 100


def _share_one_pool(*products):
    for each in products:
        each.customer_pool = "acme-customers"
        each.save(update_fields=["customer_pool"])


def test_links_an_existing_company_found_by_domain(api, product, other_product, catalog):
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    _share_one_pool(product, other_product)
    existing = CompanyFactory(name="Umbrella Corp", domain="umbrella.com")
    ProductLinkFactory(product=other_product, company=existing, external_org_id="crm_1")

    response = onboard(api, externalOrgId="chat_1", hints={"domain": "umbrella.com"}, contactEmail="ada@umbrella.com")

    assert response.status_code == 201
    assert response.json()["linkStatus"] == "linked"
    assert response.json()["companyId"] == str(existing.pk)
    assert ProductLink.objects.filter(product=product, company=existing, external_org_id="chat_1").exists()
    assert Contact.objects.filter(company=existing, email="ada@umbrella.com").exists()
    assert Company.objects.count() == 1


def test_never_links_a_company_of_another_pool(api, product, other_product, catalog):
    """The takeover of issue 8: product A's onboard must not find B's customer."""
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    theirs = CompanyFactory(name="Umbrella Corp", short_id="umbrella-corp", domain="umbrella.com")
    ProductLinkFactory(product=other_product, company=theirs, external_org_id="crm_1")

    response = onboard(api, externalOrgId="chat_1", hints={"domain": "umbrella.com", "companyName": "Umbrella Corp"})

    assert response.json()["linkStatus"] == "created"
    assert response.json()["companyId"] != str(theirs.pk)
    assert not ProductLink.objects.filter(product=product, company=theirs).exists()
    mine = Company.objects.get(pk=response.json()["companyId"])
    # shortIds are unique per pool: another pool's is no reason to number ours.
    assert (mine.customer_pool, mine.short_id) == ("chat", "umbrella-corp")


def test_below_the_threshold_creates_a_new_company(api, other_product, catalog):
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    ProductLinkFactory(product=other_product, company=CompanyFactory(name="Umbrella Corporation Holdings", domain="u.com"))

    response = onboard(api, externalOrgId="chat_2", hints={"companyName": "Umbrella"})

    assert response.json()["linkStatus"] == "created"
    assert Company.objects.count() == 2


def test_applies_the_given_tier(api, catalog):
    response = onboard(api, externalOrgId="org_t", tierCode="pro")

    assert response.json()["billingStatus"] == billing_status(tierApplied=True, tierCode="pro")
    company = Company.objects.get(pk=response.json()["companyId"])
    assert access_of(company, catalog.sso).is_enabled


def test_claims_a_checkout_session(api, stripe_catalog, fake_stripe):
    session = completed_checkout(fake_stripe)

    response = onboard(api, externalOrgId="org_c", checkoutSessionId=session["id"], hints={"companyName": "Hooli"})

    assert response.status_code == 201, response.json()
    status = response.json()["billingStatus"]
    subscription = Subscription.objects.get(pk=status["subscriptionId"])
    assert status == billing_status(
        claimed=True, tierApplied=True, tierCode="pro", subscriptionId=str(subscription.pk),
        stripeSubscriptionId=subscription.stripe_subscription_id,
    )
    assert str(subscription.company_id) == response.json()["companyId"]
    assert BillingProfile.objects.get(company=subscription.company).stripe_customer_id == session["customer"]


def test_links_a_subscription(api, stripe_catalog, fake_stripe):
    customer = fake_stripe.create_customer()
    stripe_subscription = fake_stripe.create_subscription(customer["id"], ["price_ent_base"])

    response = onboard(api, externalOrgId="org_s", stripeSubscriptionId=stripe_subscription["id"])

    status = response.json()["billingStatus"]
    assert status == billing_status(
        linked=True, tierApplied=True, tierCode="enterprise", subscriptionId=status["subscriptionId"],
        stripeSubscriptionId=stripe_subscription["id"],
    )
    assert Subscription.objects.get(pk=status["subscriptionId"]).stripe_customer_id == customer["id"]


def test_stripe_customer_only_creates_the_billing_profile(api, catalog):
    response = onboard(api, externalOrgId="org_p", stripeCustomerId="cus_123", tierCode="pro")

    company = Company.objects.get(pk=response.json()["companyId"])
    assert company.billing_profiles.get().stripe_customer_id == "cus_123"
    assert response.json()["billingStatus"] == billing_status(tierApplied=True, tierCode="pro")


def test_second_call_is_already_linked_and_changes_nothing(api, stripe_catalog, fake_stripe):
    session = completed_checkout(fake_stripe)
    body = {"externalOrgId": "org_i", "checkoutSessionId": session["id"], "contactEmail": "a@hooli.xyz"}
    first = onboard(api, **body).json()
    counts = (Company.objects.count(), Contact.objects.count(), Subscription.objects.count(), ProductLink.objects.count())
    requests_before = fake_stripe.request_count()

    second = onboard(api, **{**body, "contactEmail": "b@hooli.xyz", "tierCode": "enterprise"})

    assert second.status_code == 200
    assert second.json()["linkStatus"] == "already_linked"
    assert second.json()["companyId"] == first["companyId"]
    # Nothing applied by this call; the fields name what is there.
    assert second.json()["billingStatus"] == billing_status(
        claimed=True, tierCode="pro", subscriptionId=first["billingStatus"]["subscriptionId"],
        stripeSubscriptionId=first["billingStatus"]["stripeSubscriptionId"],
    )
    assert (Company.objects.count(), Contact.objects.count(), Subscription.objects.count(), ProductLink.objects.count()) == counts
    assert Subscription.objects.get().tier.code == "pro"
    assert fake_stripe.request_count() == requests_before


def test_incomplete_checkout_is_400_and_creates_nothing(api, stripe_catalog, fake_stripe):
    session = open_checkout(fake_stripe)

    response = onboard(api, externalOrgId="org_x", checkoutSessionId=session["id"], hints={"companyName": "Nope"})

    assert response.status_code == 400
    assert not Company.objects.exists()
    assert not ProductLink.objects.exists()


def test_checkout_claimed_by_another_company_is_409_and_rolls_back(api, company, stripe_catalog, fake_stripe):
    session = completed_checkout(fake_stripe)
    assert api.post(
        "/api/v1/billing/claim-checkout", {"companyId": str(company.pk), "checkoutSessionId": session["id"]}, format="json"
    ).status_code == 201

    response = onboard(api, externalOrgId="org_y", checkoutSessionId=session["id"], hints={"companyName": "Other"})

    assert response.status_code == 409
    assert not ProductLink.objects.filter(external_org_id="org_y").exists()
    assert Company.objects.count() == 1


def test_unknown_tier_is_404_and_creates_nothing(api, catalog):
    response = onboard(api, externalOrgId="org_z", tierCode="platinum")

    assert response.status_code == 404
    assert response.json()["error"]["details"] == {"tierCode": "platinum"}
    assert not Company.objects.exists()


def test_stripe_unreachable_is_503_and_creates_nothing(api, stripe_catalog, fake_stripe):
    session = completed_checkout(fake_stripe)
    fake_stripe.fail_next(3, status=500)

    response = onboard(api, externalOrgId="org_u", checkoutSessionId=session["id"])

    assert response.status_code == 503
    assert not Company.objects.exists()


def test_both_checkout_and_subscription_is_400(api, catalog):
    response = onboard(api, externalOrgId="org_b", checkoutSessionId="cs_1", stripeSubscriptionId="sub_1")

    assert response.status_code == 400


def test_bad_input_is_400(api, catalog):
    assert onboard(api).status_code == 400
    assert onboard(api, externalOrgId="o", contactEmail="not-an-email").status_code == 400
    assert onboard(api, externalOrgId="o", surprise=1).status_code == 400
    assert not Company.objects.exists()


def test_same_external_org_in_two_products_are_separate(api, other_api, catalog):
    mine = onboard(api, externalOrgId="org_shared", hints={"companyName": "Shared One"}).json()
    theirs = onboard(other_api, externalOrgId="org_shared", hints={"companyName": "Totally Different"}).json()

    assert mine["linkStatus"] == "created"
    assert theirs["linkStatus"] == "created"
    assert mine["companyId"] != theirs["companyId"]


def test_replay_with_a_new_checkout_session_claims_it_and_changes_nothing_else(api, stripe_catalog, fake_stripe):
    """SPEC §6: a repeat changes nothing — except that a checkout session not seen before is
    still claimed (201: a subscription was made), without applying another tier or adding the contact."""
    first = onboard(api, externalOrgId="org_r", contactEmail="a@hooli.xyz").json()
    assert first["billingStatus"]["tierCode"] == "free"
    session = completed_checkout(fake_stripe)

    again = onboard(api, externalOrgId="org_r", checkoutSessionId=session["id"], contactEmail="b@hooli.xyz")

    assert again.status_code == 201, again.json()
    body = again.json()
    assert body["linkStatus"] == "already_linked"
    assert body["companyId"] == first["companyId"]
    subscription = Subscription.objects.get(company_id=first["companyId"])
    assert subscription.checkout_session_id == session["id"]
    assert body["billingStatus"] == billing_status(
        claimed=True, tierApplied=True, tierCode="pro", subscriptionId=str(subscription.pk),
        stripeSubscriptionId=subscription.stripe_subscription_id,
    )
    assert list(Contact.objects.filter(company_id=first["companyId"]).values_list("email", flat=True)) == ["a@hooli.xyz"]

    third = onboard(api, externalOrgId="org_r", checkoutSessionId=session["id"])
    assert third.status_code == 200
    assert third.json()["billingStatus"]["tierApplied"] is False
    assert Subscription.objects.count() == 1


def test_replay_with_a_new_subscription_links_it(api, stripe_catalog, fake_stripe):
    first = onboard(api, externalOrgId="org_s").json()
    session = completed_checkout(fake_stripe)

    again = onboard(api, externalOrgId="org_s", stripeSubscriptionId=session["subscription"])

    assert again.status_code == 201, again.json()
    assert again.json()["billingStatus"]["linked"] is True
    assert str(Subscription.objects.get().company_id) == first["companyId"]


def test_replay_with_a_checkout_claimed_by_another_company_is_409_and_changes_nothing(
    api, company, stripe_catalog, fake_stripe
):
    onboard(api, externalOrgId="org_t")
    session = completed_checkout(fake_stripe)
    assert api.post(
        "/api/v1/billing/claim-checkout", {"companyId": str(company.pk), "checkoutSessionId": session["id"]}, format="json"
    ).status_code == 201

    response = onboard(api, externalOrgId="org_t", checkoutSessionId=session["id"])

    assert response.status_code == 409
    assert Subscription.objects.get().company == company
