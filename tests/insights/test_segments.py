"""Segments (SPEC §8): membership from criteria on profile fields, metadata,
usage, credits, MRR and tier; parents; entered/left events exactly once;
`load_segments`; the API's isolation and its 400s."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from companies.models import Account, Company
from credits.services import credits_grant
from insights.criteria import SegmentError
from insights.models import AccountHealth, Segment, SegmentMembership
from insights.services import segment_sync, segment_validate, segments_load, segments_sync
from metering.services import usage_track
from notifications.models import Event
from tests.factories.companies import CompanyFactory, ProductLinkFactory
from tests.factories.entitlements import FeatureAccessFactory, MeteredFeatureFactory, TierFactory

pytestmark = pytest.mark.django_db


def customer(product, name, *, mrr=0, status="active", metadata=None, **profile) -> Company:
    company = CompanyFactory(name=name, short_id=name.lower().replace(" ", "-"), **profile)
    ProductLinkFactory(product=product, company=company)
    Account.objects.filter(company=company, product=product).update(mrr=mrr, status=status, metadata=metadata or {})
    return company


def segment(product, slug, criteria, *, parent=None, type="custom") -> Segment:
    fields = segment_validate(product_id=product.pk, slug=slug, name=slug.title(), type=type, criteria=criteria, parent=parent)
    return Segment.objects.create(product=product, parent=parent, **fields)


def members(seg: Segment) -> list[str]:
    segment_sync(segment_id=seg.pk)
    return sorted(SegmentMembership.objects.filter(segment=seg).values_list("company__name", flat=True))


@pytest.fixture
def world(product):
    """Five customers of `product` with profiles, metadata, MRR, usage, credits and a tier."""
    acme = customer(product, "Acme", mrr=49_00, country="US", industry="Manufacturing", size="mid_market",
                    timezone="America/New_York", locale="en-US", metadata={"plan": "pro", "seats": 12})
    globex = customer(product, "Globex", mrr=2_499_00, country="DE", industry="Energy software", size="enterprise",
                      timezone="Europe/Berlin", locale="de-DE", metadata={"plan": "enterprise", "seats": 250})
    initech = customer(product, "Initech", mrr=0, status="churned", country="FR", size="smb",
                       metadata={"plan": "free", "beta": True})
    umbrella = customer(product, "Umbrella", mrr=149_00, country="GB", industry="Pharma", size="enterprise")
    hooli = customer(product, "Hooli", mrr=19_00, status="at_risk")  # no profile at all
    ai = MeteredFeatureFactory(product=product, code="ai_credit")
    for company, quantity in ((acme, 5), (globex, 120), (umbrella, 40)):
        FeatureAccessFactory(company=company, feature=ai, quantity_limit=None)
        usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", quantity=quantity)
    pro = TierFactory(product=product, code="pro")
    FeatureAccessFactory(company=globex, feature=MeteredFeatureFactory(product=product, code="seats"), tier=pro)
    credits_grant(company_id=acme.pk, product_id=product.pk, amount=500, reason="welcome")
    credits_grant(company_id=hooli.pk, product_id=product.pk, amount=20, reason="welcome")
    return {"acme": acme, "globex": globex, "initech": initech, "umbrella": umbrella, "hooli": hooli}


def c(field, op, value=...):
    return {"field": field, "op": op, **({} if value is ... else {"value": value})}


@pytest.mark.parametrize(
    "criteria, expected",
    [
        # profile fields (issue 15)
        ({"all": [c("country", "in", ["de", "fr", "gb"])]}, ["Globex", "Initech", "Umbrella"]),
        ({"all": [c("country", "ne", "DE")]}, ["Acme", "Hooli", "Initech", "Umbrella"]),
        ({"all": [c("country", "exists", False)]}, ["Hooli"]),
        ({"all": [c("size", "eq", "enterprise")]}, ["Globex", "Umbrella"]),
        ({"all": [c("industry", "contains", "SOFTWARE")]}, ["Globex"]),
        ({"all": [c("industry", "eq", "pharma")]}, ["Umbrella"]),
        ({"all": [c("timezone", "contains", "Europe/")]}, ["Globex"]),
        ({"all": [c("locale", "in", ["en-US", "de-DE"])]}, ["Acme", "Globex"]),
        ({"all": [c("currency", "eq", "USD")]}, ["Acme", "Globex", "Hooli", "Initech", "Umbrella"]),
        # account fields
        ({"all": [c("mrr", "gte", 149_00)]}, ["Globex", "Umbrella"]),
        ({"all": [c("mrr", "lt", 20_00)]}, ["Hooli", "Initech"]),
        ({"all": [c("status", "in", ["at_risk", "churned"])]}, ["Hooli", "Initech"]),
        ({"all": [c("createdAt", "gt", "-1d")]}, ["Acme", "Globex", "Hooli", "Initech", "Umbrella"]),
        ({"all": [c("createdAt", "lt", "2000-01-01")]}, []),
        ({"all": [c("lifetimeValue", "eq", 0)]}, ["Acme", "Globex", "Hooli", "Initech", "Umbrella"]),
        # metadata keys
        ({"all": [c("metadata.plan", "eq", "pro")]}, ["Acme"]),
        ({"all": [c("metadata.plan", "ne", "pro")]}, ["Globex", "Hooli", "Initech", "Umbrella"]),
        ({"all": [c("metadata.seats", "gt", 10)]}, ["Acme", "Globex"]),
        ({"all": [c("metadata.seats", "lte", 12)]}, ["Acme"]),
        ({"all": [c("metadata.plan", "in", ["free", "enterprise"])]}, ["Globex", "Initech"]),
        ({"all": [c("metadata.beta", "eq", True)]}, ["Initech"]),
        ({"all": [c("metadata.plan", "contains", "PRI")]}, ["Globex"]),
        ({"all": [c("metadata.seats", "exists")]}, ["Acme", "Globex"]),
        # usage this period, credits, tier
        ({"all": [c("usage.ai_credit", "gte", 40)]}, ["Globex", "Umbrella"]),
        ({"all": [c("usage.ai_credit", "eq", 0)]}, ["Hooli", "Initech"]),
        ({"all": [c("credits.balance", "gt", 100)]}, ["Acme"]),
        ({"all": [c("credits.balance", "lt", 100)]}, ["Globex", "Hooli", "Initech", "Umbrella"]),
        ({"all": [c("credits.balance", "exists")]}, ["Acme", "Hooli"]),
        ({"all": [c("tier", "eq", "pro")]}, ["Globex"]),
        ({"all": [c("tier", "exists", False)]}, ["Acme", "Hooli", "Initech", "Umbrella"]),
        ({"all": [c("lastActivityAt", "exists")]}, ["Acme", "Globex", "Umbrella"]),
        # groups
        ({"any": [c("country", "eq", "US"), {"all": [c("size", "eq", "enterprise"), c("mrr", "lt", 1000_00)]}]},
         ["Acme", "Umbrella"]),
        ({"all": []}, ["Acme", "Globex", "Hooli", "Initech", "Umbrella"]),
    ],
)
def test_members_match_the_criteria(product, world, criteria, expected):
    assert members(segment(product, "s", criteria)) == expected


def test_tier_is_the_tier_layer_in_force(product, world):
    # A tier change leaves the old tier's other features disabled, still naming it.
    old = TierFactory(product=product, code="starter")
    FeatureAccessFactory(company=world["acme"], feature=MeteredFeatureFactory(product=product, code="old"), tier=old,
                         is_enabled=False)
    assert members(segment(product, "starter", {"all": [c("tier", "eq", "starter")]})) == []
    assert members(segment(product, "not-pro", {"all": [c("tier", "ne", "pro")]})) == [
        "Acme", "Hooli", "Initech", "Umbrella"]


def test_health_score_and_risk_level(product, world):
    now = timezone.now()
    for name, score, risk in (("acme", 85, "low"), ("hooli", 22, "critical"), ("umbrella", 48, "high")):
        account = Account.objects.get(company=world[name], product=product)
        AccountHealth.objects.create(account=account, score=score, risk_level=risk, computed_at=now)

    assert members(segment(product, "a", {"all": [c("healthScore", "lt", 50)]})) == ["Hooli", "Umbrella"]
    assert members(segment(product, "b", {"all": [c("riskLevel", "in", ["high", "critical"])]})) == ["Hooli", "Umbrella"]
    assert members(segment(product, "c", {"all": [c("riskLevel", "ne", "low")]})) == ["Globex", "Hooli", "Initech", "Umbrella"]
    assert members(segment(product, "d", {"all": [c("healthScore", "exists", False)]})) == ["Globex", "Initech"]


def test_a_child_segment_keeps_only_its_parents_members(product, world):
    europe = segment(product, "europe", {"all": [c("country", "in", ["DE", "FR", "GB"])]})
    big_europe = segment(product, "big-europe", {"all": [c("size", "eq", "enterprise")]}, parent=europe)
    paying_big_europe = segment(product, "paying-big-europe", {"all": [c("mrr", "gt", 1000_00)]}, parent=big_europe)

    assert members(big_europe) == ["Globex", "Umbrella"]  # not a US enterprise
    assert members(paying_big_europe) == ["Globex"]
    # the parent's criteria change: the children follow at their next sync
    europe.criteria = {"all": [c("country", "eq", "GB")]}
    europe.save()
    assert [r.members for r in segments_sync(product_id=product.pk)] == [1, 1, 0]


def test_parent_cycles_and_other_products_are_refused(product, other_product, world):
    parent = segment(product, "parent", {"all": []})
    child = segment(product, "child", {"all": []}, parent=parent)
    foreign = segment(other_product, "foreign", {"all": []})

    with pytest.raises(SegmentError) as caught:
        segment_validate(product_id=product.pk, slug="parent", name="P", type="custom", criteria={"all": []},
                         parent=child, segment_id=parent.pk)
    assert "makes a cycle" in caught.value.details["fields"]["parent"][0]
    with pytest.raises(SegmentError) as caught:
        segment_validate(product_id=product.pk, slug="x", name="X", type="custom", criteria={"all": []}, parent=foreign)
    assert caught.value.details["fields"]["parent"] == ["must be a segment of the same product"]
    with pytest.raises(SegmentError) as caught:
        segment_validate(product_id=product.pk, slug="Bad Slug", name="", type="vip", criteria={"any": []})
    assert set(caught.value.details["fields"]) == {"slug", "name", "type", "criteria.any"}


def test_companies_of_other_products_are_never_members(product, other_product, world):
    customer(other_product, "Elsewhere", mrr=10_000_00, country="DE")
    rich = segment(product, "rich", {"all": [c("mrr", "gt", 0)]})
    theirs = segment(other_product, "all", {"all": []})
    assert "Elsewhere" not in members(rich)
    assert members(theirs) == ["Elsewhere"]


def events(type_):
    return sorted((e.data["segment"], str(e.data["companyId"])) for e in Event.objects.filter(type=type_))


def test_entered_and_left_are_announced_exactly_once(product, world):
    big = segment(product, "big", {"all": [c("mrr", "gte", 149_00)]})
    segment_sync(segment_id=big.pk)
    segment_sync(segment_id=big.pk)  # nothing changed: nothing announced

    globex, umbrella, acme = world["globex"], world["umbrella"], world["acme"]
    assert events("segment.entered") == sorted([("big", str(globex.pk)), ("big", str(umbrella.pk))])
    assert events("segment.left") == []
    entered = Event.objects.get(type="segment.entered", data__companyId=str(globex.pk))
    assert entered.product_id == product.pk
    assert set(entered.data) == {"segment", "segmentName", "segmentType", "companyId", "enteredAt"}

    Account.objects.filter(company=umbrella).update(mrr=0)
    Account.objects.filter(company=acme).update(mrr=500_00)
    segment_sync(segment_id=big.pk)
    segment_sync(segment_id=big.pk)
    assert events("segment.left") == [("big", str(umbrella.pk))]
    assert len(events("segment.entered")) == 3
    assert sorted(SegmentMembership.objects.filter(segment=big).values_list("company__name", flat=True)) == ["Acme", "Globex"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_announce_each_entry_once(product):
    for n in range(20):
        customer(product, f"Company {n:02}", mrr=n * 100)
    seg = segment(product, "paying", {"all": [c("mrr", "gt", 0)]})
    barrier = threading.Barrier(4)
    failures = []

    def run():
        try:
            barrier.wait()
            segment_sync(segment_id=seg.pk)
        except Exception as error:  # pragma: no cover - reported below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert Event.objects.filter(type="segment.entered").count() == 19
    assert SegmentMembership.objects.filter(segment=seg).count() == 19


def test_sync_is_a_fixed_number_of_queries_whatever_the_companies(product, world):
    seg = segment(product, "mixed", {"any": [
        c("country", "in", ["DE", "US"]), c("metadata.seats", "gt", 100), c("usage.ai_credit", "gt", 10),
        c("credits.balance", "gt", 0), c("tier", "eq", "pro"),
    ]})
    segment_sync(segment_id=seg.pk)
    with CaptureQueriesContext(connection) as few:
        segment_sync(segment_id=seg.pk)
    for n in range(15):
        customer(product, f"More {n}", country="DE", metadata={"seats": n})
    segment_sync(segment_id=seg.pk)
    with CaptureQueriesContext(connection) as many:
        segment_sync(segment_id=seg.pk)
    assert len(many) == len(few) <= 8


def test_stats_of_the_last_sync(product, world):
    seg = segment(product, "low", {"all": [c("mrr", "lt", 150_00)]})  # Acme 49, Initech 0 churned, Umbrella 149, Hooli 19
    segment_sync(segment_id=seg.pk)
    seg.refresh_from_db()
    assert seg.stats == {
        "customer_count": 4, "percent_of_total": 80.0, "total_mrr": 217_00, "avg_mrr": 54_25,
        "churn_rate": 25.0, "currency": "usd",
    }
    assert seg.last_synced_at is not None


# --- load_segments ---------------------------------------------------------------------


def write(tmp_path, data) -> str:
    path = tmp_path / "segments.json"
    path.write_text(json.dumps(data))
    return str(path)


SEGMENTS = [
    {"product": "chat", "slug": "eu-enterprise", "name": "EU enterprise", "type": "demographic",
     "criteria": {"all": [{"field": "size", "op": "eq", "value": "enterprise"}]}, "parent": "eu"},
    {"product": "chat", "slug": "eu", "name": "EU customers", "type": "demographic",
     "criteria": {"all": [{"field": "country", "op": "in", "value": ["DE", "FR"]}]}},
]


def test_load_segments_is_idempotent(product, tmp_path, capsys):
    path = write(tmp_path, SEGMENTS)
    call_command("load_segments", path)
    assert "2 created, 0 updated, 0 unchanged" in capsys.readouterr().out
    child = Segment.objects.get(slug="eu-enterprise")
    assert child.parent.slug == "eu" and child.type == "demographic"
    updated_at = child.updated_at

    call_command("load_segments", path)
    assert "0 created, 0 updated, 2 unchanged" in capsys.readouterr().out
    child.refresh_from_db()
    assert child.updated_at == updated_at

    changed = json.loads(json.dumps(SEGMENTS))
    changed[1]["name"] = "Europe"
    call_command("load_segments", write(tmp_path, changed))
    assert "0 created, 1 updated, 1 unchanged" in capsys.readouterr().out
    assert Segment.objects.count() == 2


def test_load_segments_names_the_path_and_changes_nothing(product, tmp_path):
    bad = json.loads(json.dumps(SEGMENTS))
    bad[0]["criteria"]["all"].append({"field": "size", "op": "like", "value": "x"})
    bad[1]["colour"] = "blue"
    bad.append({"product": "nope", "slug": "x", "name": "X", "type": "custom", "criteria": {"all": []}})
    with pytest.raises(CommandError) as caught:
        call_command("load_segments", write(tmp_path, bad))
    message = str(caught.value)
    assert "nothing was changed" in message
    assert '[0].criteria.all[1].op: unknown operator "like"' in message
    assert "[1].colour: unknown field" in message
    assert "[2].product: unknown product 'nope'" in message
    assert not Segment.objects.exists()


def test_load_segments_refuses_parent_cycles_and_unknown_parents(product):
    cycle = [
        {"product": "chat", "slug": "a", "name": "A", "type": "custom", "criteria": {"all": []}, "parent": "b"},
        {"product": "chat", "slug": "b", "name": "B", "type": "custom", "criteria": {"all": []}, "parent": "a"},
        {"product": "chat", "slug": "c", "name": "C", "type": "custom", "criteria": {"all": []}, "parent": "zzz"},
        {"product": "chat", "slug": "a", "name": "A again", "type": "custom", "criteria": {"all": []}},
    ]
    with pytest.raises(SegmentError) as caught:
        segments_load(data=cycle)
    fields = caught.value.details["fields"]
    assert "makes a cycle" in fields["[0].parent"][0]
    assert fields["[2].parent"] == ["unknown segment 'zzz' in product 'chat'"]
    assert fields["[3].slug"] == ["'a' is already defined at [0]"]
    with pytest.raises(SegmentError):
        segments_load(data={"not": "a list"})
    assert not Segment.objects.exists()


def test_load_segments_refuses_a_cycle_through_an_existing_segment(product):
    segments_load(data=[
        {"product": "chat", "slug": "a", "name": "A", "type": "custom", "criteria": {"all": []}},
        {"product": "chat", "slug": "b", "name": "B", "type": "custom", "criteria": {"all": []}, "parent": "a"},
    ])
    with pytest.raises(SegmentError) as caught:
        segments_load(data=[{"product": "chat", "slug": "a", "name": "A", "type": "custom", "criteria": {"all": []}, "parent": "b"}])
    assert "makes a cycle (a → b → a)" in caught.value.details["fields"]["[0].parent"][0]


def test_sync_segments_command_and_job(product, world, capsys):
    segment(product, "paying", {"all": [c("mrr", "gt", 0)]})
    call_command("sync_segments")
    assert "chat/paying: 4 members (4 entered, 0 left)" in capsys.readouterr().out
    call_command("run_job", "sync_segments")
    assert Event.objects.filter(type="segment.entered").count() == 4


# --- API --------------------------------------------------------------------------------


def test_segments_api_lists_the_products_segments(api, other_api, product, world):
    europe = segment(product, "europe", {"all": [c("country", "in", ["DE", "FR", "GB"])]}, type="demographic")
    segment(product, "big-europe", {"all": [c("size", "eq", "enterprise")]}, parent=europe)
    segments_sync(product_id=product.pk)

    body = api.get("/api/v1/segments").json()
    assert body["hasMore"] is False and body["nextCursor"] is None
    assert [item["slug"] for item in body["data"]] == ["big-europe", "europe"]
    item = body["data"][1]
    assert item == {
        "slug": "europe", "name": "Europe", "type": "demographic",
        "criteria": {"all": [{"field": "country", "op": "in", "value": ["DE", "FR", "GB"]}]},
        "parent": None, "customerCount": 3, "percentOfTotal": 60.0, "totalMrr": 2_648_00, "avgMrr": 882_67,
        "churnRate": 33.33, "lastSyncedAt": item["lastSyncedAt"],
    }
    assert item["lastSyncedAt"].endswith("Z")
    assert body["data"][0]["parent"] == "europe"

    page = api.get("/api/v1/segments/big-europe/companies", {"limit": 1}).json()
    assert [company["name"] for company in page["data"]] == ["Globex"] and page["hasMore"] is True
    assert page["data"][0]["mrr"] == 2_499_00 and page["data"][0]["country"] == "DE"
    rest = api.get("/api/v1/segments/big-europe/companies", {"limit": 1, "cursor": page["nextCursor"]}).json()
    assert [company["name"] for company in rest["data"]] == ["Umbrella"] and rest["hasMore"] is False

    # Another product's key sees none of it.
    assert other_api.get("/api/v1/segments").json()["data"] == []
    hidden = other_api.get("/api/v1/segments/europe/companies")
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "url, params, field",
    [
        ("/api/v1/segments", {"limit": 0}, "limit"),
        ("/api/v1/segments", {"limit": "many"}, "limit"),
        ("/api/v1/segments", {"cursor": "garbage"}, "cursor"),
        ("/api/v1/segments", {"type": "value"}, "type"),
        ("/api/v1/segments/europe/companies", {"limit": 501}, "limit"),
        ("/api/v1/segments/europe/companies", {"cursor": "Zm9v"}, "cursor"),
    ],
)
def test_bad_queries_are_400_with_field_messages(api, product, url, params, field):
    segment(product, "europe", {"all": []})
    response = api.get(url, params)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "BAD_REQUEST" and field in error["details"]["fields"]


def test_unknown_segment_is_404(api, product):
    response = api.get("/api/v1/segments/nope/companies")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Segment not found."
