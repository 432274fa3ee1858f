"""The fake Stripe server, exercised through the official SDK over real HTTP.

No Django and no database: run alone with
``pytest -p no:django --noconftest tests/fakes`` or as part of the suite.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from tests.fakes.stripe_server import FakeStripe, parse_form

WEBHOOK_SECRET = "whsec_test_secret"


@pytest.fixture(scope="module")
def server():
    with FakeStripe() as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.reset()
    yield server
    assert server.server_errors == []
    server.server_errors.clear()


@pytest.fixture
def client(fake):
    return stripe.StripeClient(
        api_key="sk_test_x",
        base_addresses={"api": fake.api_base, "meter_events": fake.meter_events_api_base},
        max_network_retries=0,
    )


def session_client(fake, token, **kwargs):
    """The meter event stream authenticates with the session token as api_key."""
    kwargs.setdefault("max_network_retries", 0)
    return stripe.StripeClient(
        api_key=token,
        base_addresses={"api": fake.api_base, "meter_events": fake.meter_events_api_base},
        **kwargs,
    )


def ev(identifier, value, customer="cus_1", name="api_calls", ts=None):
    return {"event_name": name, "identifier": identifier,
            "payload": {"stripe_customer_id": customer, "value": str(value)},
            "timestamp": ts or datetime.now(timezone.utc).isoformat()}


def test_parse_form_nesting():
    assert parse_form("items[0][price]=p1&items[1][price]=p2&items[1][quantity]=3"
                      "&metadata[k]=v&expand[]=a&expand[]=b&x=") == {
        "items": [{"price": "p1"}, {"price": "p2", "quantity": "3"}],
        "metadata": {"k": "v"}, "expand": ["a", "b"], "x": ""}


# ---- v1 resources ----------------------------------------------------------------

def test_customer_crud_and_errors(client):
    cus = client.v1.customers.create({"email": "a@example.com", "name": "Acme",
                                      "metadata": {"company_id": "42"}})
    assert cus.id.startswith("cus_") and cus.object == "customer"
    updated = client.v1.customers.update(cus.id, {"metadata": {"company_id": "", "x": "1"}})
    assert dict(updated.metadata) == {"x": "1"}
    assert client.v1.customers.retrieve(cus.id).email == "a@example.com"
    listed = client.v1.customers.list({"email": "a@example.com"})
    assert [c.id for c in listed.data] == [cus.id] and listed.has_more is False

    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.customers.retrieve("cus_missing")
    assert exc.value.http_status == 404 and exc.value.code == "resource_missing"


def test_auth_required(fake):
    bad = stripe.StripeClient(api_key="pk_test_nope", base_addresses={"api": fake.api_base},
                              max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.customers.list()
    req = urllib.request.Request(fake.api_base + "/v1/customers")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req)
    assert exc.value.code == 401
    assert json.loads(exc.value.read())["error"]["type"] == "invalid_request_error"


def test_checkout_subscription_round_trip(fake, client):
    prod = client.v1.products.create({"name": "Pro"})
    price = client.v1.prices.create({"product": prod.id, "unit_amount": 2900, "currency": "usd",
                                     "recurring": {"interval": "month"}, "lookup_key": "pro_m"})
    assert price.id.startswith("price_") and price.recurring.interval == "month"
    assert [p.id for p in client.v1.prices.list({"lookup_keys": ["pro_m"]}).data] == [price.id]

    cs = client.v1.checkout.sessions.create({
        "mode": "subscription", "line_items": [{"price": price.id, "quantity": 2}],
        "success_url": "https://example.com/ok", "client_reference_id": "company-7",
        "metadata": {"tier": "pro"}, "customer_email": "buyer@example.com"})
    assert cs.id.startswith("cs_") and cs.status == "open" and cs.amount_total == 5800
    assert cs.subscription is None and cs.payment_status == "unpaid"

    fake.complete_checkout_session(cs.id)
    cs = client.v1.checkout.sessions.retrieve(cs.id, {"expand": ["line_items"]})
    assert cs.status == "complete" and cs.payment_status == "paid"
    assert cs.customer.startswith("cus_") and cs.subscription.startswith("sub_")
    assert cs.line_items.data[0].price.id == price.id

    sub = client.v1.subscriptions.retrieve(cs.subscription)
    item = sub["items"].data[0]
    assert sub.status == "active" and sub.customer == cs.customer
    assert item.id.startswith("si_") and item.price.id == price.id and item.quantity == 2
    assert item.current_period_end == sub.current_period_end > sub.current_period_start
    assert sub.latest_invoice.startswith("in_")

    # update: swap price, metadata, cancel at period end
    annual = client.v1.prices.create({"product": prod.id, "unit_amount": 29000, "currency": "usd",
                                      "recurring": {"interval": "year"}})
    sub = client.v1.subscriptions.update(sub.id, {
        "items": [{"id": item.id, "price": annual.id}], "metadata": {"k": "v"},
        "cancel_at_period_end": True})
    assert sub["items"].data[0].price.id == annual.id and sub.cancel_at_period_end is True
    assert [s.id for s in client.v1.subscriptions.list({"customer": cs.customer}).data] == [sub.id]

    canceled = client.v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled"
    assert client.v1.subscriptions.list({"customer": cs.customer}).data == []
    assert len(client.v1.subscriptions.list({"customer": cs.customer, "status": "all"}).data) == 1

    types = [e["type"] for e in fake.events]
    for t in ("checkout.session.completed", "customer.subscription.created", "invoice.paid",
              "customer.subscription.updated", "customer.subscription.deleted"):
        assert t in types


def test_checkout_expire(fake, client):
    price = fake.create_price(product=fake.create_product(name="P")["id"], unit_amount=100,
                              currency="usd", recurring={"interval": "month"})
    cs = client.v1.checkout.sessions.create({"mode": "subscription",
                                             "line_items": [{"price": price["id"], "quantity": 1}]})
    fake.expire_checkout_session(cs.id)
    assert client.v1.checkout.sessions.retrieve(cs.id).status == "expired"


def test_idempotency_key_replays_same_response(client, fake):
    opts = {"idempotency_key": "idem-1"}
    a = client.v1.customers.create({"email": "x@example.com"}, opts)
    b = client.v1.customers.create({"email": "x@example.com"}, opts)
    assert a.id == b.id and len(fake.customers) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create({"email": "other@example.com"}, opts)


def test_payment_intents_and_declines(fake, client):
    cus = fake.create_customer(email="p@example.com")
    pi = client.v1.payment_intents.create({
        "amount": 5000, "currency": "usd", "customer": cus["id"], "payment_method": "pm_card_visa",
        "off_session": True, "confirm": True, "metadata": {"wallet": "w1"}})
    assert pi.id.startswith("pi_") and pi.status == "succeeded" and pi.amount_received == 5000

    fake.fail_next_payments(1)
    with pytest.raises(stripe.CardError) as exc:
        client.v1.payment_intents.create({"amount": 5000, "currency": "usd", "customer": cus["id"],
                                          "payment_method": "pm_card_visa", "confirm": True,
                                          "off_session": True})
    assert exc.value.http_status == 402 and exc.value.code == "card_declined"
    failed_id = exc.value.json_body["error"]["payment_intent"]["id"]
    assert client.v1.payment_intents.retrieve(failed_id).status == "requires_payment_method"

    refund = client.v1.refunds.create({"payment_intent": pi.id, "amount": 1000})
    assert refund.id.startswith("re_") and refund.amount == 1000
    assert "charge.refunded" in [e["type"] for e in fake.events]


# ---- billing meters ---------------------------------------------------------------

def test_v1_meters_events_dedupe_adjust_and_summaries(fake, client):
    meter = client.v1.billing.meters.create({"event_name": "api_calls", "display_name": "API calls",
                                             "default_aggregation": {"formula": "sum"}})
    assert meter.id.startswith("mtr_") and meter.object == "billing.meter"
    now = int(time.time())
    for i, value in enumerate([5, 7, -2]):
        client.v1.billing.meter_events.create({
            "event_name": "api_calls", "identifier": f"e{i}", "timestamp": now,
            "payload": {"stripe_customer_id": "cus_1", "value": str(value)}})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.billing.meter_events.create({
            "event_name": "api_calls", "identifier": "e0",
            "payload": {"stripe_customer_id": "cus_1", "value": "100"}})
    assert exc.value.code == "duplicate_meter_event"
    assert fake.meter_event_total("api_calls", "cus_1") == 10

    client.v1.billing.meter_event_adjustments.create(
        {"event_name": "api_calls", "type": "cancel", "cancel": {"identifier": "e1"}})
    assert fake.meter_event_total("api_calls", "cus_1") == 3

    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id, {"customer": "cus_1", "start_time": now - 60, "end_time": now + 60})
    assert len(summaries.data) == 1
    s = summaries.data[0]
    assert s.object == "billing.meter_event_summary" and s.aggregated_value == 3 and s.meter == meter.id
    empty = client.v1.billing.meters.event_summaries.list(
        meter.id, {"customer": "cus_other", "start_time": now - 60, "end_time": now + 60})
    assert empty.data[0].aggregated_value == 0


def test_v1_meter_event_too_old_is_rejected(client):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.billing.meter_events.create({
            "event_name": "api_calls", "timestamp": int(time.time()) - 36 * 86400,
            "payload": {"stripe_customer_id": "cus_1", "value": "1"}})
    assert exc.value.code == "timestamp_too_far_in_past"


def test_v2_stream_batch_limits_dedupe_negative_values(fake, client):
    session = client.v2.billing.meter_event_session.create()
    assert session.object == "v2.billing.meter_event_session"
    assert datetime.fromisoformat(session.expires_at) > datetime.now(timezone.utc)
    stream = session_client(fake, session.authentication_token)

    stream.v2.billing.meter_event_stream.create({"events": [ev(f"id{i}", 1) for i in range(100)]})
    assert fake.meter_event_total("api_calls", "cus_1") == 100

    with pytest.raises(stripe.InvalidRequestError):
        stream.v2.billing.meter_event_stream.create({"events": [ev(f"x{i}", 1) for i in range(101)]})
    assert fake.meter_event_total("api_calls", "cus_1") == 100  # the whole batch was rejected

    # duplicates (within a batch and across batches) count once; negatives subtract
    stream.v2.billing.meter_event_stream.create({"events": [
        ev("id0", 1), ev("id0", 1), ev("neg-1", -30), ev("other", 4, customer="cus_2")]})
    assert fake.meter_event_total("api_calls", "cus_1") == 70
    assert fake.meter_event_total("api_calls", "cus_2") == 4
    assert fake.duplicate_meter_events == 2
    assert len(fake.meter_events) == 102

    # an API key is not a session token
    with pytest.raises(stripe.AuthenticationError):
        client.v2.billing.meter_event_stream.create({"events": [ev("k", 1)]})


def test_v2_stream_expired_session(fake, client):
    token = client.v2.billing.meter_event_session.create().authentication_token
    fake.expire_sessions()
    with pytest.raises(stripe.TemporarySessionExpiredError) as exc:
        session_client(fake, token).v2.billing.meter_event_stream.create({"events": [ev("a", 1)]})
    assert exc.value.http_status == 401 and exc.value.code == "billing_meter_event_session_expired"
    assert fake.meter_events == []


def test_v2_stream_async_errors_are_dropped(fake, client):
    token = client.v2.billing.meter_event_session.create().authentication_token
    old = datetime.fromtimestamp(time.time() - 40 * 86400, timezone.utc).isoformat()
    session_client(fake, token).v2.billing.meter_event_stream.create(
        {"events": [ev("old", 1, ts=old), ev("ok", 2)]})
    assert fake.meter_event_total("api_calls") == 2
    assert [e["error"] for e in fake.meter_event_errors] == ["timestamp_too_far_in_past"]


# ---- failure injection --------------------------------------------------------------

def test_fail_next_leaves_state_unchanged(fake, client):
    token = client.v2.billing.meter_event_session.create().authentication_token
    stream = session_client(fake, token)
    fake.fail_next(1, status=429, retry_after=0, paths="/v2/billing/meter_event_stream")
    with pytest.raises(stripe.RateLimitError) as exc:
        stream.v2.billing.meter_event_stream.create({"events": [ev("a", 1)]})
    assert exc.value.headers["Retry-After"] == "0"
    fake.fail_next(1, status=500)
    with pytest.raises(stripe.APIError):
        stream.v2.billing.meter_event_stream.create({"events": [ev("a", 1)]})
    assert fake.meter_events == []
    stream.v2.billing.meter_event_stream.create({"events": [ev("a", 1)]})
    assert fake.meter_event_total("api_calls") == 1


def test_sdk_retries_through_injected_500s(fake):
    fake.fail_next(2, status=500)
    retrying = fake.client(max_network_retries=2)
    assert retrying.v1.customers.create({"email": "r@example.com"}).id.startswith("cus_")
    assert fake.request_count("/v1/customers", method="POST") == 3
    assert len(fake.customers) == 1  # the retries reused one Idempotency-Key


def test_fail_randomly_is_seeded_and_never_double_counts(fake, client):
    token = client.v2.billing.meter_event_session.create().authentication_token
    stream = session_client(fake, token)
    fake.fail_randomly(rate=0.5, status=500, seed=7, paths="/v2/billing/meter_event_stream")
    failures = 0
    for batch in range(20):
        events = [ev(f"b{batch}-{i}", 1) for i in range(10)]
        while True:  # a worker retrying the same batch until it lands
            try:
                stream.v2.billing.meter_event_stream.create({"events": events})
                break
            except stripe.APIError:
                failures += 1
    fake.fail_randomly(rate=0)
    assert failures > 0
    assert fake.meter_event_total("api_calls") == 200


def test_hang_next_times_out_the_client(fake):
    fake.hang_next(1, seconds=1.0)
    impatient = fake.client(http_client=stripe.RequestsClient(timeout=0.2))
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.customers.create({"email": "slow@example.com"})
    assert fake.customers == []

    fake.hang_next(1, seconds=0.5, then="process")
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.customers.create({"email": "slow@example.com"})
    time.sleep(0.6)
    assert len(fake.customers) == 1  # Stripe did it, the client never heard


# ---- webhooks ---------------------------------------------------------------------------

class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            event = stripe.Webhook.construct_event(body, self.headers["Stripe-Signature"],
                                                   WEBHOOK_SECRET)
            self.received.append(event)
            status = 200
        except stripe.SignatureVerificationError:
            status = 400
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver():
    _Receiver.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/stripe/webhook", _Receiver.received
    httpd.shutdown()
    httpd.server_close()


def test_signed_webhook_is_accepted_by_the_sdk(fake, receiver):
    url, received = receiver
    cus = fake.create_customer(email="w@example.com")
    event = fake.build_event("customer.updated", cus["id"], previous_attributes={"email": None})
    assert event["id"].startswith("evt_") and event["object"] == "event"
    assert fake.send_webhook(url, event, WEBHOOK_SECRET)[0] == 200
    assert received[0].id == event["id"] and received[0].data.object.id == cus["id"]

    payload = json.dumps(event)
    header = fake.sign_payload(payload, WEBHOOK_SECRET)
    assert stripe.Webhook.construct_event(payload, header, WEBHOOK_SECRET).type == "customer.updated"
    assert fake.send_webhook(url, event, "whsec_wrong")[0] == 400
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, fake.sign_payload(payload, WEBHOOK_SECRET,
                                                                  timestamp=1), WEBHOOK_SECRET)


def test_events_are_delivered_to_configured_webhook_url(receiver):
    url, received = receiver
    with FakeStripe(webhook_url=url, webhook_secret=WEBHOOK_SECRET) as fake:
        fake.create_customer(email="auto@example.com")
        assert fake.wait_for_webhooks()
    assert [e.type for e in received] == ["customer.created"]
    assert fake.webhook_deliveries[0]["status"] == 200


# ---- global SDK configuration, throughput ---------------------------------------------

def test_global_sdk_configuration(fake, monkeypatch):
    monkeypatch.setattr(stripe, "api_key", "sk_test_global")
    monkeypatch.setattr(stripe, "api_base", fake.api_base)
    monkeypatch.setattr(stripe, "meter_events_api_base", fake.meter_events_api_base)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    cus = stripe.Customer.create(email="g@example.com")
    assert stripe.Customer.retrieve(cus.id).email == "g@example.com"


def test_throughput_sanity(fake, client):
    """No timing assert: just shows what one client thread pushes."""
    token = client.v2.billing.meter_event_session.create().authentication_token
    stream = session_client(fake, token)
    started = time.perf_counter()
    for batch in range(50):
        stream.v2.billing.meter_event_stream.create(
            {"events": [ev(f"t{batch}-{i}", 1) for i in range(100)]})
    elapsed = time.perf_counter() - started
    assert fake.meter_event_total("api_calls") == 5000
    print(f"\n5000 meter events in {elapsed:.2f}s ({5000 / elapsed:,.0f}/s)")


def test_control_endpoints(fake):
    req = urllib.request.Request(fake.api_base + "/_fake/fail_next", method="POST",
                                 data=json.dumps({"n": 1, "status": 503}).encode())
    urllib.request.urlopen(req).read()
    with pytest.raises(stripe.APIError):
        fake.client().v1.customers.list()
    stats = json.loads(urllib.request.urlopen(fake.api_base + "/_fake/stats").read())
    assert stats["request_counts"]["GET /v1/customers"] == 1


def test_concurrent_streams_count_exactly_once(fake, client):
    token = client.v2.billing.meter_event_session.create().authentication_token

    def worker(w):
        stream = session_client(fake, token)
        for batch in range(10):
            # every worker also re-sends worker 0's first batch: duplicates across threads
            stream.v2.billing.meter_event_stream.create(
                {"events": [ev(f"w{w}-{batch}-{i}", 1) for i in range(50)]})
            stream.v2.billing.meter_event_stream.create(
                {"events": [ev(f"w0-0-{i}", 1) for i in range(50)]})

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.meter_event_total("api_calls") == 4 * 10 * 50
    assert fake.request_count("/v2/billing/meter_event_stream") == 80
