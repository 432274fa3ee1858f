import pytest

from companies.domains import InvalidDomain, email_domain, is_free_mail, normalize_domain


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("acme.com", "acme.com"),
        ("ACME.com", "acme.com"),
        ("  https://www.Acme.com/pricing?x=1#top ", "acme.com"),
        ("http://acme.com:8080", "acme.com"),
        ("www.shop.acme.co.uk", "shop.acme.co.uk"),
        ("acme.com.", "acme.com"),
        ("user:pw@acme.com", "acme.com"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("", ""),
    ],
)
def test_normalize_domain(raw, expected):
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize(
    "raw", ["localhost", "acme", "acme..com", "-acme.com", "acme_corp.com", "192.168.0.1", "[::1]", "a b.com", "www."]
)
def test_invalid_domains_are_rejected(raw):
    with pytest.raises(InvalidDomain):
        normalize_domain(raw)


def test_email_domain_and_free_mail():
    assert email_domain("Jane@Mail.ACME.com") == "mail.acme.com"
    assert email_domain("not-an-email") == ""
    assert is_free_mail("gmail.com")
    assert not is_free_mail("acme.com")
