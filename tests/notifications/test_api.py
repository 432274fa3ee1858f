"""The endpoints API and the event feed: shapes, bad input, tenant isolation."""

from __future__ import annotations

import pytest

from notifications.models import Event, WebhookEndpoint
from notifications.services import event_emit

pytestmark = pytest.mark.django_db


def _create(api, **body):
    return api.post("/api/v1/webhook-endpoints", {"url": "https://hooks.example.com/saasdesk", **body}, format="json")


def test_create_shows_the_secret_once(api):
    response = _create(api, eventTypes=["usage.limit_reached"])
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["eventTypes"] == ["usage.limit_reached"] and body["enabled"] is True
    assert body["disabledReason"] is None
    listed = api.get("/api/v1/webhook-endpoints").json()
    assert listed["hasMore"] is False and listed["nextCursor"] is None
    assert [e["id"] for e in listed["data"]] == [body["id"]]
    assert "secret" not in listed["data"][0]
    assert "secret" not in api.get(f"/api/v1/webhook-endpoints/{body['id']}").json()


def test_event_types_omitted_means_all(api):
    body = _create(api).json()
    assert body["eventTypes"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": 12}, "url"),
        ({"eventTypes": ["usage.nonsense"]}, "eventTypes"),
        ({"eventTypes": "usage.limit_reached"}, "eventTypes"),
        ({"secret": "mine"}, "secret"),
    ],
)
def test_bad_input_is_400_with_field_messages(api, body, field):
    response = _create(api, **body)
    assert response.status_code == 400, response.json()
    assert any(name.split(".")[0] == field for name in response.json()["error"]["details"]["fields"])
    assert not WebhookEndpoint.objects.exists()


def test_missing_url_is_400(api):
    response = api.post("/api/v1/webhook-endpoints", {}, format="json")
    assert response.status_code == 400
    assert "url" in response.json()["error"]["details"]["fields"]


def test_patch_and_delete(api):
    endpoint_id = _create(api).json()["id"]
    response = api.patch(
        f"/api/v1/webhook-endpoints/{endpoint_id}",
        {"enabled": False, "eventTypes": ["feature_access.changed"]},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["enabled"] is False and response.json()["disabledReason"] == "manual"
    response = api.patch(f"/api/v1/webhook-endpoints/{endpoint_id}", {"enabled": True}, format="json")
    assert response.json()["enabled"] is True and response.json()["disabledReason"] is None
    bad = api.patch(f"/api/v1/webhook-endpoints/{endpoint_id}", {"url": "gopher://x"}, format="json")
    assert bad.status_code == 400 and "url" in bad.json()["error"]["details"]["fields"]
    bad = api.patch(f"/api/v1/webhook-endpoints/{endpoint_id}", {"enabled": "yes"}, format="json")
    assert bad.status_code == 400
    response = api.delete(f"/api/v1/webhook-endpoints/{endpoint_id}")
    assert response.status_code == 200 and response.json() == {"id": endpoint_id, "deleted": True}
    assert api.get(f"/api/v1/webhook-endpoints/{endpoint_id}").status_code == 404


def test_other_products_endpoints_are_404(api, other_api):
    endpoint_id = _create(api).json()["id"]
    assert other_api.get(f"/api/v1/webhook-endpoints/{endpoint_id}").status_code == 404
    assert other_api.patch(f"/api/v1/webhook-endpoints/{endpoint_id}", {"enabled": False}, format="json").status_code == 404
    assert other_api.delete(f"/api/v1/webhook-endpoints/{endpoint_id}").status_code == 404
    assert other_api.get("/api/v1/webhook-endpoints").json()["data"] == []
    assert other_api.get("/api/v1/webhook-endpoints/not-a-uuid").status_code == 404
    assert WebhookEndpoint.objects.get().enabled


def test_feed_pages_oldest_first_and_is_product_scoped(api, other_api, product, other_product):
    mine = [event_emit(product=product, type="usage.threshold_reached", data={"n": n}) for n in range(5)]
    event_emit(product=other_product, type="usage.threshold_reached", data={"n": "theirs"})
    event_emit(product=product, type="feature_access.changed", data={"n": 5})
    page = api.get("/api/v1/events", {"limit": 2}).json()
    assert [e["id"] for e in page["data"]] == [str(mine[0].pk), str(mine[1].pk)]
    assert page["hasMore"] is True and page["nextCursor"]
    first = page["data"][0]
    assert set(first) == {"id", "type", "createdAt", "product", "data"}
    assert first["product"] == "chat" and first["data"] == {"n": 0}
    rest = api.get("/api/v1/events", {"cursor": page["nextCursor"], "limit": 10}).json()
    assert [e["data"]["n"] for e in rest["data"]] == [2, 3, 4, 5]
    assert rest["hasMore"] is False and rest["nextCursor"] is None
    after = api.get("/api/v1/events", {"after": str(mine[3].pk)}).json()
    assert [e["data"]["n"] for e in after["data"]] == [4, 5]
    typed = api.get("/api/v1/events", {"type": "feature_access.changed"}).json()
    assert [e["data"]["n"] for e in typed["data"]] == [5]
    theirs = other_api.get("/api/v1/events").json()["data"]
    assert [e["data"]["n"] for e in theirs] == ["theirs"]
    # Another product's event id is unknown to this key.
    assert other_api.get("/api/v1/events", {"after": str(mine[0].pk)}).status_code == 404


@pytest.mark.parametrize(
    "query",
    [{"type": "nope"}, {"limit": 0}, {"limit": 501}, {"after": "x"}, {"color": "red"}, {"limit": "ten"}, {"cursor": "zz"}],
)
def test_feed_bad_query_is_400(api, query):
    response = api.get("/api/v1/events", query)
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["details"]["fields"]


def test_events_carry_iso_times(api, product):
    event_emit(product=product, type="usage.threshold_reached", data={})
    [event] = api.get("/api/v1/events").json()["data"]
    assert event["createdAt"].endswith("Z")
    assert Event.objects.count() == 1
