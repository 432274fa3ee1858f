"""Smart-link scoring (SPEC §3) through the service, plus the pure helpers."""

import pytest

from companies import services
from companies.models import ProductLink
from companies.smart_link import name_score, normalize_company_name, smart_link_match
from config.errors import BadRequest
from tests.factories.companies import CompanyFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db


def _smart_link(product, **kwargs):
    kwargs.setdefault("external_org_id", "org_new")
    return services.company_smart_link(product_id=product.pk, **kwargs)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Acme Inc.", "acme"),
        ("ACME, Inc", "acme"),
        ("Acme GmbH", "acme"),
        ("Acme G.m.b.H.", "acme"),
        ("Acme Ltd", "acme"),
        ("Acme LLC", "acme"),
        ("Müller & Söhne AG", "muller and sohne"),
        ("Company", "company"),
    ],
)
def test_normalize_company_name(raw, normalized):
    assert normalize_company_name(raw) == normalized


def test_name_score_is_scaled_by_similarity():
    assert name_score("acme", "acme") == 80
    assert 60 <= name_score("acme corp international", "acme corporation international") < 80
    assert name_score("acme", "zebra logistics") == 0


def test_domain_match_links_with_95(product):
    company = CompanyFactory(customer_pool="chat", name="Totally Different", domain="acme.com")
    result = _smart_link(product, domain="https://www.acme.com/", company_name="Something")
    assert (result.status, result.company, result.confidence, result.matched_by) == ("linked", company, 95, "domain")
    assert ProductLink.objects.get(product=product, external_org_id="org_new").company == company


def test_name_with_legal_suffix_links_with_80(product):
    company = CompanyFactory(customer_pool="chat", name="Globex GmbH", domain="globex.de")
    result = _smart_link(product, company_name="Globex Inc")
    assert (result.status, result.company, result.confidence, result.matched_by) == ("linked", company, 80, "name")


def test_email_domain_links_with_70(product):
    company = CompanyFactory(customer_pool="chat", name="Initech", domain="initech.io")
    result = _smart_link(product, emails=["peter@initech.io", "joe@gmail.com"])
    assert (result.status, result.company, result.confidence, result.matched_by) == (
        "linked",
        company,
        70,
        "email_domain",
    )


def test_free_mail_never_matches(product):
    CompanyFactory(customer_pool="chat", name="Someone", domain="gmail.com")
    assert _smart_link(product, emails=["a@gmail.com"], domain="gmail.com").status == "no_match"
    assert not ProductLink.objects.filter(product=product).exists()


def test_candidate_score_is_the_best_signal(product):
    company = CompanyFactory(customer_pool="chat", name="Hooli", domain="hooli.xyz")
    result = _smart_link(product, company_name="Hooli", domain="hooli.xyz", emails=["g@hooli.xyz"])
    assert (result.company, result.confidence, result.matched_by) == (company, 95, "domain")


def test_below_threshold_gives_suggestions(product):
    company = CompanyFactory(customer_pool="chat", name="Initech", domain="initech.io")
    result = _smart_link(product, emails=["peter@initech.io"], min_confidence=0.9)
    assert result.status == "suggestions"
    assert [(s.company, s.confidence, s.matched_by) for s in result.suggestions] == [(company, 70, "email_domain")]
    assert not ProductLink.objects.filter(product=product).exists()


def test_threshold_is_inclusive(product):
    CompanyFactory(customer_pool="chat", name="Initech", domain="initech.io")
    assert _smart_link(product, emails=["peter@initech.io"], min_confidence=0.7).status == "linked"


def test_ambiguous_candidates_give_suggestions_best_first(product):
    a = CompanyFactory(customer_pool="chat", name="Acme Inc", domain="acme.com")
    b = CompanyFactory(customer_pool="chat", name="Acme GmbH", domain="acme.de")
    c = CompanyFactory(customer_pool="chat", name="Acme Widgets", domain="acmewidgets.com")
    result = _smart_link(product, company_name="ACME")
    assert result.status == "suggestions"
    assert [s.company for s in result.suggestions][:2] == sorted([a, b], key=lambda x: x.name.lower())
    assert result.suggestions[-1].company == c
    assert result.suggestions[0].confidence == 80 > result.suggestions[-1].confidence


def test_two_companies_on_the_same_domain_are_not_picked_blindly(product):
    CompanyFactory(customer_pool="chat", name="Acme US", domain="acme.com")
    CompanyFactory(customer_pool="chat", name="Acme EU", domain="acme.com")
    result = _smart_link(product, domain="acme.com")
    assert result.status == "suggestions" and len(result.suggestions) == 2


def test_clear_winner_needs_a_margin(product):
    winner = CompanyFactory(customer_pool="chat", name="Northwind", domain="northwind.com")
    CompanyFactory(customer_pool="chat", name="Northwind Traders", domain="nwtraders.com")
    result = _smart_link(product, company_name="Northwind", domain="northwind.com")
    assert (result.status, result.company) == ("linked", winner)


def test_at_most_five_suggestions(product):
    for i in range(8):
        CompanyFactory(customer_pool="chat", name=f"Acme {i}", domain=f"acme{i}.com")
    result = _smart_link(product, company_name="Acme")
    assert result.status == "suggestions" and len(result.suggestions) == 5


def test_no_match(product):
    CompanyFactory(customer_pool="chat", name="Acme", domain="acme.com")
    assert _smart_link(product, company_name="Zebra Logistics", domain="zebra.io").status == "no_match"
    assert _smart_link(product).status == "no_match"


def test_already_linked(product):
    company = CompanyFactory(customer_pool="chat", name="Acme", domain="acme.com")
    ProductLinkFactory(product=product, company=company, external_org_id="org_new")
    result = _smart_link(product, company_name="Something else")
    assert (result.status, result.company, result.confidence) == ("already_linked", company, 100)


def test_a_link_in_another_product_is_not_already_linked(product, other_product):
    company = CompanyFactory(customer_pool="chat", name="Acme", domain="acme.com")
    ProductLinkFactory(product=other_product, company=company, external_org_id="org_new")
    # ... but the company itself is a candidate: that is the point of smart linking.
    result = _smart_link(product, domain="acme.com")
    assert (result.status, result.company) == ("linked", company)


def test_invalid_hints_are_400(product):
    with pytest.raises(BadRequest):
        _smart_link(product, domain="not a domain")
    with pytest.raises(BadRequest):
        _smart_link(product, min_confidence=1.5)


def test_name_prefilter_keeps_the_query_bounded(product, django_assert_max_num_queries):
    for i in range(30):
        CompanyFactory(customer_pool="chat", name=f"Filler {i}", domain=f"filler{i}.example.com")
    target = CompanyFactory(customer_pool="chat", name="Seven Seas", domain="sevenseas.example.com")
    with django_assert_max_num_queries(2):
        match = smart_link_match(customer_pool="chat", company_name="Seven Seas Ltd", domain="sevenseas.example.com", emails=[])
    assert match.winner is not None and match.winner.company == target
    assert [c.company for c in match.candidates] == [target]


def test_common_words_do_not_crowd_out_the_match(product, monkeypatch):
    from companies import smart_link

    monkeypatch.setattr(smart_link, "MAX_NAME_CANDIDATES", 5)
    for i in range(10):
        CompanyFactory(customer_pool="chat", name=f"The {i} Co", domain=f"the{i}.example.com")
    target = CompanyFactory(customer_pool="chat", name="Acme Group Holdings", domain="acme-group.example.com")
    match = smart_link_match(customer_pool="chat", company_name="The Acme Group")
    assert [c.company for c in match.candidates] == [target]
