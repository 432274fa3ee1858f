import re
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from entitlements.actors import Actor
from entitlements.services import tier_apply
from tests.entitlements.conftest import *  # noqa
from tests.entitlements.test_admin import support, billing_admin  # noqa

pytestmark = pytest.mark.django_db

def norm(q):
    return re.sub(r"'[^']*'|\d+", "?", q["sql"])[:160]

def test_dbg(support, company, tiers):
    company_url = reverse("admin:companies_company_change", args=[company.pk])
    tier_apply(company=company, tier=tiers["starter"], actor=Actor.system("tests"))
    with CaptureQueriesContext(connection) as a:
        support.get(company_url)
    for code in ("pro", "enterprise", "starter", "pro"):
        tier_apply(company=company, tier=tiers[code], actor=Actor.system("tests"))
    with CaptureQueriesContext(connection) as b:
        support.get(company_url)
    from collections import Counter
    ca, cb = Counter(map(norm, a.captured_queries)), Counter(map(norm, b.captured_queries))
    print("\nEXTRA", cb - ca, "\nLESS", ca - cb)
