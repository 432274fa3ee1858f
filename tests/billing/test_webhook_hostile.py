"""POST /stripe/webhook against hostile input (issue 8 items 3 and 7): a
timestamp outside the tolerance on either side, deeply nested JSON."""

from __future__ import annotations

import json
import logging
import time

import pytest

from billing.models import StripeWebhookEvent
from billing.services.webhooks import SIGNATURE_TOLERANCE_SECONDS
from tests.billing.conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.django_db


def _post(client, fake, payload: bytes, timestamp: int | None = None):
    return client.post(
        "/stripe/webhook", data=payload, content_type="application/json",
        HTTP_STRIPE_SIGNATURE=fake.sign_payload(payload, WEBHOOK_SECRET, timestamp),
    )


@pytest.mark.parametrize("offset", [-3600, -(SIGNATURE_TOLERANCE_SECONDS + 30), SIGNATURE_TOLERANCE_SECONDS + 30, 3600,
                                    10 * 365 * 86400])
def test_a_timestamp_outside_the_window_is_refused_on_both_sides(client, fake_stripe, offset):
    event = fake_stripe.build_event("invoice.paid", {"id": "in_1", "object": "invoice"})
    response = _post(client, fake_stripe, json.dumps(event).encode(), int(time.time()) + offset)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"
    assert not StripeWebhookEvent.objects.exists()


@pytest.mark.parametrize("offset", [-60, 0, 60])
def test_a_timestamp_inside_the_window_is_accepted(client, fake_stripe, offset):
    event = fake_stripe.build_event("ping.unhandled", {"id": "x_1", "object": "thing"})
    response = _post(client, fake_stripe, json.dumps(event).encode(), int(time.time()) + offset)
    assert response.status_code == 200, response.content
    assert StripeWebhookEvent.objects.count() == 1


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_json_is_400_without_a_traceback(client, fake_stripe, depth, caplog):
    payload = ('{"id": "evt_deep", "type": "invoice.paid", "data": ' + "[" * depth + "]" * depth + "}").encode()
    with caplog.at_level(logging.DEBUG):
        response = _post(client, fake_stripe, payload)
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "BAD_REQUEST" and "nest" in body["message"].lower()
    assert not any(record.exc_info for record in caplog.records)
    assert not StripeWebhookEvent.objects.exists()
