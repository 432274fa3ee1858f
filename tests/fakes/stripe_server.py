"""A fake Stripe API served over real HTTP, for tests, benchmarks and demos.

Why a server and not mocks: the official ``stripe`` SDK is pointed at it
(``base_addresses`` / ``stripe.api_base``), so the code under test exercises
the SDK's real request encoding, retry logic (``Retry-After``,
``Stripe-Should-Retry``), idempotency keys, error classes and timeouts.

Scope: the resources SaaSDesk uses (customers, products, prices, payment
methods with Stripe's test cards, setup intents, checkout sessions,
subscriptions with trials, prorations and billing cycles, invoices, payment
intents, charges, refunds, disputes, events, v1 billing meters / meter events
/ adjustments / event summaries, and the v2 meter event session + stream),
with Stripe's documented shapes (every key of Stripe's example invoice and
subscription). State lives
in memory behind one lock. Injected failures (``fail_next``, ``fail_randomly``,
``hang_next``) are decided before any handler runs, so a failed call never
changes state; a meter event batch is validated as a whole before any of it
is recorded.

Usage::

    with FakeStripe() as fake:
        client = stripe.StripeClient(
            api_key="sk_test_x",
            base_addresses={"api": fake.api_base,
                            "meter_events": fake.meter_events_api_base},
            max_network_retries=0,
        )

CLI (bench/demo): ``python -m tests.fakes.stripe_server --port 12111``.
"""

from __future__ import annotations

import argparse
import calendar
import collections
import copy
import hashlib
import hmac
import itertools
import json
import queue
import random
import re
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

API_VERSION = "2026-02-25.clover"  # what stripe 14.x pins; echoed on events
SESSION_TTL_SECONDS = 15 * 60  # v2 meter event session lifetime (Stripe docs)
METER_EVENT_MAX_AGE = 35 * 24 * 3600  # meter events older than this are rejected
METER_EVENT_MAX_FUTURE = 5 * 60
STREAM_MAX_EVENTS = 100
IDEMPOTENCY_CACHE_SIZE = 50_000  # responses kept for Idempotency-Key replays


class StripeError(Exception):
    """Raised by handlers; rendered as Stripe's ``{"error": {...}}`` body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type, "message": message}
        if code:
            self.body["code"] = code
        if param:
            self.body["param"] = param
        self.body.update(extra)
        self.headers = headers or {}


def _missing(kind: str, oid: str, param: str = "id") -> StripeError:
    return StripeError(404, f"No such {kind}: '{oid}'", code="resource_missing", param=param)


# --------------------------------------------------------------------------
# Encoding helpers
# --------------------------------------------------------------------------

_SEGMENT = re.compile(r"\[([^\]]*)\]")


def parse_form(body: str) -> dict[str, Any]:
    """Decode Stripe's form encoding (``items[0][price]=x``, ``metadata[k]=v``,
    ``expand[]=a``) into nested dicts/lists. Dicts whose keys are all digits
    become lists, mirroring how the SDK encodes lists (``key[0]``, ``key[1]``)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        head, _, rest = key.partition("[")
        parts = [head] + (_SEGMENT.findall("[" + rest) if rest else [])
        node = root
        for i, part in enumerate(parts):
            if part == "":
                part = str(len(node))
            if i == len(parts) - 1:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {k: _listify(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


def _int(value: Any, param: str, default: Any = None) -> Any:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {value}", code="parameter_invalid_integer",
                          param=param) from None


def _bool(value: Any, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _number(value: Any) -> int | float | None:
    """Meter values are decimal strings; keep integers exact."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            f = float(value)
        except (TypeError, ValueError):
            return None
        return f if f == f and f not in (float("inf"), float("-inf")) else None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int((ts % 1) * 1000):03d}Z"


def _parse_ts(value: Any) -> float | None:
    """v2 sends RFC 3339 strings, v1 sends epoch seconds; accept both."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) or str(value).lstrip("-").isdigit():
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _add_interval(ts: int, interval: str, count: int = 1) -> int:
    dt = datetime.fromtimestamp(ts, timezone.utc)
    if interval == "day":
        dt += timedelta(days=count)
    elif interval == "week":
        dt += timedelta(weeks=count)
    else:
        months = count * (12 if interval == "year" else 1)
        m0 = dt.month - 1 + months
        year, month = dt.year + m0 // 12, m0 % 12 + 1
        dt = dt.replace(year=year, month=month,
                        day=min(dt.day, calendar.monthrange(year, month)[1]))
    return int(dt.timestamp())


def _merge_metadata(current: dict[str, str], update: Any) -> dict[str, str]:
    """Stripe semantics: ``metadata=""`` clears, ``metadata[k]=""`` deletes k."""
    if update is None:
        return current
    if update == "":
        return {}
    merged = dict(current)
    for k, v in update.items():
        if v == "" or v is None:
            merged.pop(k, None)
        else:
            merged[k] = str(v)
    return merged


_ID_CHARS = itertools.count(1)


def new_id(prefix: str) -> str:
    """Stripe-looking ids (``cus_…``); a counter keeps them unique and ordered."""
    return f"{prefix}_{uuid.uuid4().hex[:14]}{next(_ID_CHARS):010d}"


# --------------------------------------------------------------------------
# Test cards (Stripe's test PaymentMethod tokens)
# --------------------------------------------------------------------------

# decline_code → (error code, message), as Stripe words them.
DECLINES = {
    "generic_decline": ("card_declined", "Your card was declined."),
    "insufficient_funds": ("card_declined", "Your card has insufficient funds."),
    "lost_card": ("card_declined", "Your card was declined."),
    "expired_card": ("expired_card", "Your card has expired."),
    "incorrect_cvc": ("incorrect_cvc", "Your card's security code is incorrect."),
}

# Stripe's test tokens: using one creates a new ``pm_…`` with these card
# details. ``decline``: the card is refused when it is set up (attach,
# SetupIntent) and when it is charged; ``charge_decline``: it attaches fine
# but every charge fails (Stripe's ``pm_card_chargeCustomerFail``);
# ``dispute``: the charge succeeds, then a dispute is opened.
TEST_CARDS: dict[str, dict[str, Any]] = {
    "pm_card_visa": {"brand": "visa", "last4": "4242"},
    "pm_card_visa_debit": {"brand": "visa", "last4": "5556", "funding": "debit"},
    "pm_card_mastercard": {"brand": "mastercard", "last4": "4444"},
    "pm_card_amex": {"brand": "amex", "last4": "8431"},
    "pm_card_chargeDeclined": {"brand": "visa", "last4": "0002", "decline": "generic_decline"},
    "pm_card_chargeDeclinedInsufficientFunds": {"brand": "visa", "last4": "9995",
                                                "decline": "insufficient_funds"},
    "pm_card_chargeDeclinedLostCard": {"brand": "visa", "last4": "9987", "decline": "lost_card"},
    "pm_card_chargeDeclinedExpiredCard": {"brand": "visa", "last4": "0069", "decline": "expired_card"},
    "pm_card_chargeDeclinedIncorrectCvc": {"brand": "visa", "last4": "0127", "decline": "incorrect_cvc"},
    "pm_card_chargeCustomerFail": {"brand": "visa", "last4": "0341", "charge_decline": "generic_decline"},
    "pm_card_createDispute": {"brand": "visa", "last4": "0259", "dispute": True},
}
# ``tok_visa`` (card[token] on POST /v1/payment_methods) → the same cards.
_TOKEN_ALIASES = {"tok_" + k[len("pm_card_"):]: k for k in TEST_CARDS}

_NULL_ADDRESS = {"city": None, "country": None, "line1": None, "line2": None,
                 "postal_code": None, "state": None}
PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")
PAYMENT_BEHAVIORS = ("allow_incomplete", "error_if_incomplete", "default_incomplete",
                     "pending_if_incomplete")
INTERVAL_MAX_COUNT = {"day": 365, "week": 52, "month": 12, "year": 1}


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------

class _Request:
    __slots__ = ("method", "path", "query", "params", "headers", "api_mode", "raw")

    def __init__(self, method, path, query, params, headers, api_mode, raw):
        self.method = method
        self.path = path
        self.query = query
        self.params = params
        self.headers = headers
        self.api_mode = api_mode
        self.raw = raw


class _Handler(BaseHTTPRequestHandler):
    """Thin adapter: everything interesting happens in ``FakeStripe._serve``."""

    protocol_version = "HTTP/1.1"  # keep-alive; we always send Content-Length
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive
    server: "_Server"

    def log_message(self, format, *args):  # noqa: A002 - silence per-request logs
        pass

    def do_GET(self):
        self.server.fake._serve(self, "GET")

    def do_POST(self):
        self.server.fake._serve(self, "POST")

    def do_DELETE(self):
        self.server.fake._serve(self, "DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128
    fake: "FakeStripe"

    def handle_error(self, request, client_address):
        """Clients that time out or hang up mid-response are expected here
        (hang_next, benchmarks); anything else is recorded for tests."""
        exc = traceback.format_exc()
        if "BrokenPipe" not in exc and "ConnectionReset" not in exc:
            self.fake.server_errors.append(exc)


class _FailureRule:
    __slots__ = ("remaining", "status", "retry_after", "paths", "code", "should_retry",
                 "hang_seconds", "then")

    def __init__(self, remaining, status=500, retry_after=None, paths=None, code=None,
                 should_retry=None, hang_seconds=0.0, then="close"):
        self.remaining = remaining
        self.status = status
        self.retry_after = retry_after
        self.paths = tuple(paths) if paths else None
        self.code = code
        self.should_retry = should_retry
        self.hang_seconds = hang_seconds
        self.then = then

    def matches(self, path: str) -> bool:
        return self.paths is None or any(path.startswith(p) for p in self.paths)


# --------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------

class FakeStripe:
    """In-memory Stripe behind a real local HTTP server.

    Thread safe: one re-entrant lock guards all state; the HTTP handlers and
    the Python helpers both take it. Helpers return deep copies, so tests
    can't mutate state behind the server's back.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 webhook_url: str | None = None, webhook_secret: str | None = None,
                 strict_meters: bool = False, session_ttl: float = SESSION_TTL_SECONDS,
                 clock: Callable[[], float] = time.time):
        self.host = host
        self.port = port
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.strict_meters = strict_meters  # unknown meter event_name → error
        self.session_ttl = session_ttl
        self.clock = clock
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._webhook_queue: queue.Queue = queue.Queue()
        self._webhook_thread: threading.Thread | None = None
        self._route_table = self._routes()
        self.server_errors: list[str] = []  # tracebacks of bugs in the fake itself
        self.reset()

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> "FakeStripe":
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name=f"fake-stripe:{self.port}", daemon=True)
        self._thread.start()
        self._webhook_thread = threading.Thread(target=self._webhook_worker,
                                                name="fake-stripe-webhooks", daemon=True)
        self._webhook_thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes hanging handlers
        self._server.shutdown()
        self._server.server_close()
        self._webhook_queue.put(None)
        self._server = None
        self._thread = None

    def __enter__(self) -> "FakeStripe":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def meter_events_api_base(self) -> str:
        """Same server: it routes ``/v2/billing/meter_event_stream`` too."""
        return self.api_base

    def client(self, api_key: str = "sk_test_fake", **kwargs: Any):
        """A ``stripe.StripeClient`` wired to this server (no retries by default)."""
        import stripe

        kwargs.setdefault("max_network_retries", 0)
        return stripe.StripeClient(
            api_key=api_key,
            base_addresses={"api": self.api_base, "meter_events": self.meter_events_api_base},
            **kwargs,
        )

    def reset(self) -> None:
        """Forget all objects, events, counters and failure rules."""
        with self._lock:
            self._objects: dict[str, dict[str, dict]] = collections.defaultdict(dict)
            self._by_id: dict[str, dict] = {}
            self._meter_events: list[dict] = []
            self._meter_events_by_identifier: dict[str, dict] = {}
            self._meter_event_errors: list[dict] = []
            self._duplicate_meter_events = 0
            self._sessions: dict[str, dict] = {}  # token → session
            self._idempotency: collections.OrderedDict = collections.OrderedDict()
            self._request_counts: collections.Counter = collections.Counter()
            self.requests_log: collections.deque = collections.deque(maxlen=10_000)
            self._events: list[dict] = []
            self.webhook_deliveries: list[dict] = []
            self._failure_rules: list[_FailureRule] = []
            self._random_failure: tuple | None = None
            self._payment_failures: list[dict] = []

    def _now(self) -> int:
        return int(self.clock())

    # ---- request pipeline ------------------------------------------------

    def _serve(self, handler: _Handler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        split = urlsplit(handler.path)
        path = split.path.rstrip("/") or "/"
        with self._lock:
            self._request_counts[f"{method} {path}"] += 1
        if path.startswith("/_fake/"):
            status, body, headers = self._control(method, path, split.query, raw)
            return self._write(handler, status, body, headers)

        injected = self._injected_failure(path)
        if injected is not None:
            if injected.hang_seconds:
                self._stopping.wait(injected.hang_seconds)
                if injected.then == "close":
                    handler.close_connection = True
                    return
            else:
                return self._write(handler, *self._failure_response(injected))

        api_mode = "v2" if path.startswith("/v2/") else "v1"
        try:
            if api_mode == "v2":
                params = json.loads(raw or b"{}") if method == "POST" else parse_form(split.query)
            else:
                params = parse_form(raw.decode() if method == "POST" else split.query)
        except (ValueError, UnicodeDecodeError):
            return self._write(handler, 400, {"error": {
                "type": "invalid_request_error", "message": "Invalid request body"}}, {})
        req = _Request(method, path, split.query, params, handler.headers, api_mode, raw)
        status, body, headers = self._dispatch(req)
        self.requests_log.append({"method": method, "path": path, "status": status,
                                  "params": params, "at": time.time(),
                                  "idempotency_key": handler.headers.get("Idempotency-Key")})
        self._write(handler, status, body, headers)

    def _write(self, handler: _Handler, status: int, body: Any, headers: dict) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Request-Id", "req_" + uuid.uuid4().hex[:14])
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(data)

    def _injected_failure(self, path: str) -> _FailureRule | None:
        with self._lock:
            for rule in self._failure_rules:
                if rule.remaining > 0 and rule.matches(path):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._failure_rules.remove(rule)
                    return rule
            if self._random_failure:
                rate, status, rng, paths = self._random_failure
                if (paths is None or any(path.startswith(p) for p in paths)) \
                        and rng.random() < rate:
                    return _FailureRule(1, status=status)
        return None

    @staticmethod
    def _failure_response(rule: _FailureRule) -> tuple[int, dict, dict]:
        headers: dict[str, str] = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after)
        if rule.should_retry is not None:
            headers["Stripe-Should-Retry"] = "true" if rule.should_retry else "false"
        if rule.status == 429:
            err = {"type": "invalid_request_error", "code": rule.code or "rate_limit",
                   "message": "Too many requests hit the API too quickly."}
        elif rule.status >= 500:
            err = {"type": "api_error", "message": "An unknown error occurred (injected)."}
            if rule.code:
                err["code"] = rule.code
        else:
            err = {"type": "invalid_request_error", "code": rule.code or "injected_failure",
                   "message": "Injected failure."}
        return rule.status, {"error": err}, headers

    def _dispatch(self, req: _Request) -> tuple[int, Any, dict]:
        route = self._route(req.method, req.path)
        if route is None:
            return 404, {"error": {"type": "invalid_request_error",
                                   "message": f"Unrecognized request URL ({req.method}: {req.path})."}}, {}
        handler, args, auth = route
        auth_header = req.headers.get("Authorization") or ""
        token = auth_header[7:] if auth_header.startswith("Bearer ") else ""
        idem_key = req.headers.get("Idempotency-Key") if req.method == "POST" else None
        with self._lock:
            try:
                self._authenticate(token, auth)
                if idem_key:
                    cached = self._idempotent_replay(token, idem_key, req)
                    if cached is not None:
                        return cached
                status, body = handler(req, *args)
                headers: dict[str, str] = {}
            except StripeError as e:
                status, body, headers = e.status, {"error": e.body}, e.headers
            except Exception as e:  # a bug in the fake: surface it, don't hang the client
                self.server_errors.append(traceback.format_exc())
                status, body, headers = 500, {"error": {"type": "api_error",
                                                        "message": f"fake Stripe bug: {e!r}"}}, {}
            # Serialise inside the lock: bodies reference live state.
            data = json.dumps(body).encode()
            # Like Stripe, only store results of requests that executed
            # (not validation errors, 429s or injected failures).
            if idem_key and (status < 400 or status == 402):
                self._idempotency[(token, idem_key)] = (
                    req.path, hashlib.sha1(req.raw).digest(), status, data, headers)
                if len(self._idempotency) > IDEMPOTENCY_CACHE_SIZE:
                    self._idempotency.popitem(last=False)
            return status, data, headers

    def _authenticate(self, token: str, mode: str) -> None:
        if mode == "session":
            session = self._sessions.get(token)
            if session is None:
                raise StripeError(401, "Invalid or missing meter event session token.",
                                  code="invalid_authentication_token")
            if session["_expires"] <= self.clock():
                raise StripeError(401, "The temporary session token has expired.",
                                  type="temporary_session_expired",
                                  code="billing_meter_event_session_expired")
            return
        if not token:
            raise StripeError(401, "You did not provide an API key. Provide it in the "
                                   "Authorization header (Bearer auth).")
        if not token.startswith(("sk_", "rk_")):
            raise StripeError(401, f"Invalid API Key provided: {token[:12]}…")

    def _idempotent_replay(self, token: str, key: str, req: _Request):
        hit = self._idempotency.get((token, key))
        if hit is None:
            return None
        path, digest, status, data, headers = hit
        if path != req.path or digest != hashlib.sha1(req.raw).digest():
            raise StripeError(400, "Keys for idempotent requests can only be used with the "
                                   "same parameters they were first used with.",
                              type="idempotency_error")
        return status, data, {**headers, "Idempotent-Replayed": "true"}

    # ---- routing -----------------------------------------------------------

    def _routes(self):
        oid = r"([^/]+)"
        table = [
            ("POST", "/v1/customers", self._customer_create, "key"),
            ("GET", "/v1/customers", self._customer_list, "key"),
            ("GET", f"/v1/customers/{oid}", self._customer_get, "key"),
            ("POST", f"/v1/customers/{oid}", self._customer_update, "key"),
            ("DELETE", f"/v1/customers/{oid}", self._customer_delete, "key"),
            ("POST", "/v1/products", self._product_create, "key"),
            ("GET", "/v1/products", self._generic_list("product", ("active",)), "key"),
            ("GET", f"/v1/products/{oid}", self._generic_get("product"), "key"),
            ("POST", f"/v1/products/{oid}", self._generic_update("product", ("name", "description")), "key"),
            ("POST", "/v1/prices", self._price_create, "key"),
            ("GET", "/v1/prices", self._price_list, "key"),
            ("GET", f"/v1/prices/{oid}", self._generic_get("price"), "key"),
            ("POST", f"/v1/prices/{oid}", self._generic_update("price", ("nickname", "lookup_key", "tax_behavior")), "key"),
            ("POST", "/v1/checkout/sessions", self._checkout_create, "key"),
            ("GET", "/v1/checkout/sessions", self._generic_list(
                "checkout.session", ("customer", "subscription", "payment_intent", "status")), "key"),
            ("GET", f"/v1/checkout/sessions/{oid}", self._generic_get("checkout.session"), "key"),
            ("GET", f"/v1/checkout/sessions/{oid}/line_items", self._checkout_line_items, "key"),
            ("POST", f"/v1/checkout/sessions/{oid}/expire", self._checkout_expire_http, "key"),
            ("POST", "/v1/subscriptions", self._subscription_create_http, "key"),
            ("GET", "/v1/subscriptions", self._subscription_list, "key"),
            ("GET", f"/v1/subscriptions/{oid}", self._generic_get("subscription"), "key"),
            ("POST", f"/v1/subscriptions/{oid}", self._subscription_update, "key"),
            ("DELETE", f"/v1/subscriptions/{oid}", self._subscription_cancel, "key"),
            ("POST", f"/v1/subscriptions/{oid}/resume", self._subscription_resume, "key"),
            ("GET", f"/v1/customers/{oid}/payment_methods", self._customer_payment_methods, "key"),
            ("POST", "/v1/payment_methods", self._payment_method_create, "key"),
            ("GET", "/v1/payment_methods", self._payment_method_list, "key"),
            ("GET", f"/v1/payment_methods/{oid}", self._payment_method_get, "key"),
            ("POST", f"/v1/payment_methods/{oid}", self._payment_method_update, "key"),
            ("POST", f"/v1/payment_methods/{oid}/attach", self._payment_method_attach, "key"),
            ("POST", f"/v1/payment_methods/{oid}/detach", self._payment_method_detach, "key"),
            ("POST", "/v1/setup_intents", self._setup_intent_create, "key"),
            ("GET", "/v1/setup_intents", self._generic_list("setup_intent", ("customer", "payment_method")), "key"),
            ("GET", f"/v1/setup_intents/{oid}", self._generic_get("setup_intent"), "key"),
            ("POST", f"/v1/setup_intents/{oid}/confirm", self._setup_intent_confirm, "key"),
            ("POST", f"/v1/setup_intents/{oid}/cancel", self._setup_intent_cancel, "key"),
            ("GET", "/v1/invoices", self._generic_list("invoice", ("customer", "subscription", "status")), "key"),
            ("GET", f"/v1/invoices/{oid}", self._generic_get("invoice"), "key"),
            ("GET", f"/v1/invoices/{oid}/lines", self._invoice_lines, "key"),
            ("POST", f"/v1/invoices/{oid}/finalize", self._invoice_action("finalize"), "key"),
            ("POST", f"/v1/invoices/{oid}/pay", self._invoice_action("pay"), "key"),
            ("POST", f"/v1/invoices/{oid}/void", self._invoice_action("void"), "key"),
            ("POST", f"/v1/invoices/{oid}/mark_uncollectible", self._invoice_action("mark_uncollectible"), "key"),
            ("POST", "/v1/payment_intents", self._payment_intent_create, "key"),
            ("GET", "/v1/payment_intents", self._generic_list("payment_intent", ("customer",)), "key"),
            ("GET", f"/v1/payment_intents/{oid}", self._generic_get("payment_intent"), "key"),
            ("POST", f"/v1/payment_intents/{oid}/confirm", self._payment_intent_confirm, "key"),
            ("POST", f"/v1/payment_intents/{oid}/cancel", self._payment_intent_cancel, "key"),
            ("GET", "/v1/charges", self._generic_list("charge", ("customer", "payment_intent")), "key"),
            ("GET", f"/v1/charges/{oid}", self._generic_get("charge"), "key"),
            ("POST", "/v1/refunds", self._refund_create, "key"),
            ("GET", "/v1/refunds", self._generic_list("refund", ("charge", "payment_intent")), "key"),
            ("GET", f"/v1/refunds/{oid}", self._generic_get("refund"), "key"),
            ("GET", "/v1/disputes", self._generic_list("dispute", ("charge", "payment_intent")), "key"),
            ("GET", f"/v1/disputes/{oid}", self._generic_get("dispute"), "key"),
            ("POST", f"/v1/disputes/{oid}", self._dispute_update, "key"),
            ("POST", f"/v1/disputes/{oid}/close", self._dispute_close_http, "key"),
            ("GET", "/v1/events", self._generic_list("event", ("type",)), "key"),
            ("GET", f"/v1/events/{oid}", self._generic_get("event"), "key"),
            ("POST", "/v1/billing/meters", self._meter_create, "key"),
            ("GET", "/v1/billing/meters", self._generic_list("billing.meter", ("status",)), "key"),
            ("GET", f"/v1/billing/meters/{oid}", self._generic_get("billing.meter"), "key"),
            ("GET", f"/v1/billing/meters/{oid}/event_summaries", self._meter_event_summaries, "key"),
            ("POST", "/v1/billing/meter_events", self._v1_meter_event_create, "key"),
            ("POST", "/v1/billing/meter_event_adjustments", self._meter_event_adjustment, "key"),
            ("POST", "/v2/billing/meter_event_session", self._v2_session_create, "key"),
            ("POST", "/v2/billing/meter_event_stream", self._v2_stream, "session"),
            ("POST", "/v2/billing/meter_events", self._v2_meter_event_create, "key"),
            ("POST", "/v2/billing/meter_event_adjustments", self._meter_event_adjustment, "key"),
        ]
        exact: dict[tuple[str, str], tuple] = {}
        patterns: list[tuple[str, re.Pattern, Callable, str]] = []
        for method, path, fn, auth in table:
            if "(" in path:
                patterns.append((method, re.compile(path + "$"), fn, auth))
            else:
                exact[(method, path)] = (fn, (), auth)
        return exact, patterns

    def _route(self, method: str, path: str):
        exact, patterns = self._route_table
        hit = exact.get((method, path))
        if hit:
            return hit
        for m, rx, fn, auth in patterns:
            if m == method:
                match = rx.match(path)
                if match:
                    return fn, match.groups(), auth
        return None

    # ---- generic object store ----------------------------------------------

    def _store(self, obj: dict) -> dict:
        self._objects[obj["object"]][obj["id"]] = obj
        self._by_id[obj["id"]] = obj
        return obj

    def _get(self, kind: str, oid: str, param: str = "id") -> dict:
        obj = self._objects[kind].get(oid)
        if obj is None:
            raise _missing(kind.split(".")[-1].replace("_", " "), oid, param)
        return obj

    def _expand(self, obj: Any, paths: list[str]) -> Any:
        """Stripe ``expand[]``: replace id strings with objects, recursively
        (``data.customer`` on lists, ``subscription.latest_invoice``...)."""
        if not paths or not isinstance(obj, dict):
            return _public(obj)
        out = _public(obj)
        out = dict(out) if out is obj else out
        groups: dict[str, list[str]] = collections.defaultdict(list)
        for p in paths:
            head, _, rest = p.partition(".")
            groups[head].extend([rest] if rest else [])
        for head, rests in groups.items():
            val = out.get(head)
            if head == "line_items" and out.get("object") == "checkout.session":
                val = self._line_items_list(obj)
            elif isinstance(val, str) and val in self._by_id:
                val = self._by_id[val]
            if isinstance(val, list):
                out[head] = [self._expand(v, rests) for v in val]
            else:
                out[head] = self._expand(val, rests)
        return out

    def _respond(self, obj: dict, req: _Request) -> tuple[int, Any]:
        expand = req.params.get("expand") if isinstance(req.params, dict) else None
        return 200, self._expand(obj, expand or [])

    def _list_object(self, items: list[dict], url: str, req: _Request) -> dict:
        """Newest first, ``limit`` (1–100, default 10), ``starting_after``/``ending_before``."""
        items = list(reversed(items))
        q = req.params
        limit = max(1, min(100, _int(q.get("limit"), "limit", 10)))
        if q.get("starting_after"):
            ids = [o["id"] for o in items]
            items = items[ids.index(q["starting_after"]) + 1:] if q["starting_after"] in ids else []
        elif q.get("ending_before"):
            ids = [o["id"] for o in items]
            idx = ids.index(q["ending_before"]) if q["ending_before"] in ids else 0
            items = items[max(0, idx - limit):idx]
        page = items[:limit]
        expand = [e[5:] for e in (q.get("expand") or []) if e.startswith("data.")]
        return {"object": "list", "data": [self._expand(o, expand) for o in page],
                "has_more": len(items) > limit, "url": url}

    def _generic_get(self, kind: str):
        def handler(req: _Request, oid: str):
            return self._respond(self._get(kind, oid), req)
        return handler

    def _generic_list(self, kind: str, filters: tuple[str, ...]):
        def handler(req: _Request):
            items = [o for o in self._objects[kind].values()
                     if all(req.params.get(f) in (None, "") or _same(o.get(f), req.params[f])
                            for f in filters)]
            return 200, self._list_object(items, req.path, req)
        return handler

    def _generic_update(self, kind: str, fields: tuple[str, ...]):
        def handler(req: _Request, oid: str):
            obj = self._get(kind, oid)
            p = req.params
            if kind == "price" and p.get("lookup_key"):
                for other in self._objects["price"].values():
                    if other is not obj and other["lookup_key"] == p["lookup_key"]:
                        if not _bool(p.get("transfer_lookup_key")):
                            raise StripeError(400, f"A price (`{other['id']}`) already uses that "
                                                   "lookup key.", param="lookup_key")
                        other["lookup_key"] = None
            before = copy.deepcopy(obj)
            for f in fields:
                if f in p:
                    obj[f] = p[f] or None
            if "active" in p:
                obj["active"] = _bool(p["active"])
            obj["metadata"] = _merge_metadata(obj["metadata"], p.get("metadata"))
            if "updated" in obj:
                obj["updated"] = self._now()
            self._emit(f"{kind}.updated", obj, _diff(before, obj))
            return self._respond(obj, req)
        return handler

    # ---- customers ---------------------------------------------------------

    def _create_customer(self, p: dict) -> dict:
        cus = self._store({
            "id": p.get("id") or new_id("cus"), "object": "customer", "created": self._now(),
            "email": p.get("email"), "name": p.get("name"), "description": p.get("description"),
            "phone": p.get("phone"), "metadata": _merge_metadata({}, p.get("metadata") or {}),
            "livemode": False, "balance": 0, "currency": None, "delinquent": False,
            "address": p.get("address") or None, "shipping": None, "default_source": None,
            "discount": None, "invoice_prefix": uuid.uuid4().hex[:8].upper(),
            "next_invoice_sequence": 1, "preferred_locales": p.get("preferred_locales") or [],
            "tax_exempt": "none", "test_clock": None,
            "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                                 "footer": None, "rendering_options": None},
        })
        # A test token given at creation is attached, as Stripe does.
        pm = self._payment_method(p.get("payment_method"))
        if pm is not None:
            self._attach_payment_method(pm, cus["id"])
        default_pm = (p.get("invoice_settings") or {}).get("default_payment_method")
        if default_pm:
            if pm is not None and default_pm == p.get("payment_method"):
                default_pm = pm["id"]
            cus["invoice_settings"]["default_payment_method"] = \
                self._require_attached(default_pm, cus["id"], "invoice_settings[default_payment_method]")["id"]
        self._emit("customer.created", cus)
        return cus

    def _customer_create(self, req):
        return self._respond(self._create_customer(req.params), req)

    def _customer_get(self, req, oid):
        return self._respond(self._get("customer", oid), req)

    def _customer_update(self, req, oid):
        cus, p = self._get("customer", oid), req.params
        before = copy.deepcopy(cus)
        settings = p.get("invoice_settings") if isinstance(p.get("invoice_settings"), dict) else {}
        default_pm = settings.get("default_payment_method")
        if default_pm:  # validated before anything changes
            self._require_attached(default_pm, oid, "invoice_settings[default_payment_method]")
        for f in ("email", "name", "description", "phone"):
            if f in p:
                cus[f] = p[f] or None
        if "address" in p:
            cus["address"] = {**_NULL_ADDRESS, **p["address"]} if isinstance(p["address"], dict) else None
        if "preferred_locales" in p:
            cus["preferred_locales"] = p["preferred_locales"] or []
        for k in ("default_payment_method", "footer"):
            if k in settings:
                cus["invoice_settings"][k] = settings[k] or None
        cus["metadata"] = _merge_metadata(cus["metadata"], p.get("metadata"))
        self._emit("customer.updated", cus, _diff(before, cus))
        return self._respond(cus, req)

    def _customer_delete(self, req, oid):
        cus = self._get("customer", oid)
        del self._objects["customer"][oid]
        self._emit("customer.deleted", cus)
        return 200, {"id": oid, "object": "customer", "deleted": True}

    def _customer_list(self, req):
        email = req.params.get("email")
        items = [c for c in self._objects["customer"].values() if not email or c["email"] == email]
        return 200, self._list_object(items, "/v1/customers", req)

    # ---- products & prices -------------------------------------------------

    def _create_product(self, p: dict) -> dict:
        if not p.get("name"):
            raise StripeError(400, "Missing required param: name.", code="parameter_missing",
                              param="name")
        product = self._store({
            "id": p.get("id") or new_id("prod"), "object": "product", "name": p["name"],
            "description": p.get("description"), "active": _bool(p.get("active"), True),
            "metadata": _merge_metadata({}, p.get("metadata") or {}), "created": self._now(),
            "updated": self._now(), "livemode": False, "default_price": None,
        })
        self._emit("product.created", product)
        return product

    def _product_create(self, req):
        return self._respond(self._create_product(req.params), req)

    def _create_price(self, p: dict) -> dict:
        product = p.get("product")
        if not product and p.get("product_data"):
            product = self._create_product(p["product_data"])["id"]
        if not product:
            raise StripeError(400, "Missing required param: product.", code="parameter_missing",
                              param="product")
        self._get("product", product, "product")
        if not p.get("currency"):
            raise StripeError(400, "Missing required param: currency.",
                              code="parameter_missing", param="currency")
        recurring = p.get("recurring") or None
        if recurring:
            interval = recurring.get("interval")
            if interval not in INTERVAL_MAX_COUNT:
                raise StripeError(400, f"Invalid recurring[interval]: must be one of day, week, month, "
                                       f"or year", param="recurring[interval]")
            count = _int(recurring.get("interval_count"), "recurring[interval_count]", 1)
            if not 1 <= count <= INTERVAL_MAX_COUNT[interval]:
                raise StripeError(400, "Invalid recurring[interval_count]: the maximum billing "
                                       "frequency is one year (1 year, 12 months, or 52 weeks).",
                                  param="recurring[interval_count]")
            recurring = {"interval": interval, "interval_count": count,
                         "usage_type": recurring.get("usage_type", "licensed"),
                         "meter": recurring.get("meter"), "trial_period_days": None}
        lookup_key = p.get("lookup_key")
        if lookup_key:
            for other in self._objects["price"].values():
                if other["lookup_key"] == lookup_key:
                    if not _bool(p.get("transfer_lookup_key")):
                        raise StripeError(400, f"A price (`{other['id']}`) already uses that "
                                               "lookup key.", param="lookup_key")
                    other["lookup_key"] = None
        amount = _int(p.get("unit_amount"), "unit_amount")
        price = self._store({
            "id": p.get("id") or new_id("price"), "object": "price", "product": product,
            "unit_amount": amount, "unit_amount_decimal": None if amount is None else str(amount),
            "currency": p["currency"].lower(), "recurring": recurring,
            "type": "recurring" if recurring else "one_time", "lookup_key": lookup_key,
            "nickname": p.get("nickname"), "active": _bool(p.get("active"), True),
            "billing_scheme": "per_unit", "metadata": _merge_metadata({}, p.get("metadata") or {}),
            "created": self._now(), "livemode": False, "custom_unit_amount": None,
            "tax_behavior": p.get("tax_behavior") or "unspecified", "tiers_mode": None,
            "transform_quantity": None,
        })
        self._emit("price.created", price)
        return price

    def _price_create(self, req):
        return self._respond(self._create_price(req.params), req)

    def _price_list(self, req):
        q = req.params
        keys = q.get("lookup_keys")
        items = [pr for pr in self._objects["price"].values()
                 if (not keys or pr["lookup_key"] in keys)
                 and (not q.get("product") or pr["product"] == q["product"])
                 and (q.get("active") in (None, "") or pr["active"] == _bool(q["active"]))
                 and (not q.get("type") or pr["type"] == q["type"])]
        return 200, self._list_object(items, "/v1/prices", req)

    # ---- checkout sessions -------------------------------------------------

    def _resolve_line_items(self, line_items: Any) -> list[dict]:
        items = []
        for i, li in enumerate(line_items or []):
            if li.get("price_data"):
                price = self._create_price(li["price_data"])
            else:
                price = self._get("price", li.get("price") or "", f"line_items[{i}][price]")
            items.append({"price": price["id"], "quantity": _int(li.get("quantity"), "quantity", 1)})
        return items

    def _checkout_create(self, req):
        p = req.params
        mode = p.get("mode") or "payment"
        if p.get("customer"):
            self._get("customer", p["customer"], "customer")
        items = self._resolve_line_items(p.get("line_items"))
        if not items:
            raise StripeError(400, "Missing required param: line_items.",
                              code="parameter_missing", param="line_items")
        prices = [self._by_id[i["price"]] for i in items]
        if mode == "subscription" and not any(pr["recurring"] for pr in prices):
            raise StripeError(400, "You must provide at least one recurring price in "
                                   "`subscription` mode when using prices.", param="line_items")
        sid = new_id("cs_test")
        now = self._now()
        session = self._store({
            "id": sid, "object": "checkout.session", "mode": mode, "status": "open",
            "payment_status": "unpaid", "customer": p.get("customer"),
            "customer_email": p.get("customer_email"), "customer_details": None,
            "client_reference_id": p.get("client_reference_id"),
            "metadata": _merge_metadata({}, p.get("metadata") or {}),
            "subscription": None, "payment_intent": None, "invoice": None,
            "amount_subtotal": sum((pr["unit_amount"] or 0) * i["quantity"] for pr, i in zip(prices, items)),
            "amount_total": sum((pr["unit_amount"] or 0) * i["quantity"] for pr, i in zip(prices, items)),
            "currency": prices[0]["currency"], "success_url": p.get("success_url"),
            "cancel_url": p.get("cancel_url"), "url": f"https://checkout.stripe.com/c/pay/{sid}",
            "created": now, "expires_at": now + 24 * 3600, "livemode": False,
            "subscription_data": p.get("subscription_data") or {},
            "payment_intent_data": p.get("payment_intent_data") or {},
            "_line_items": items,
        })
        return self._respond(session, req)

    def _line_items_list(self, session: dict) -> dict:
        data = []
        for i, item in enumerate(session["_line_items"]):
            price = self._by_id[item["price"]]
            amount = (price["unit_amount"] or 0) * item["quantity"]
            data.append({"id": f"li_{session['id'][8:]}{i}", "object": "item", "price": price,
                         "quantity": item["quantity"], "amount_subtotal": amount,
                         "amount_total": amount, "currency": price["currency"],
                         "description": self._by_id[price["product"]]["name"]})
        return {"object": "list", "data": data, "has_more": False,
                "url": f"/v1/checkout/sessions/{session['id']}/line_items"}

    def _checkout_line_items(self, req, oid):
        return 200, self._line_items_list(self._get("checkout.session", oid))

    def _complete_checkout(self, sid: str, customer: str | None, payment_method: str | None) -> dict:
        s = self._get("checkout.session", sid)
        if s["status"] != "open":
            raise StripeError(400, f"Checkout session {sid} is {s['status']}, not open.")
        cus_id = s["customer"] or customer
        if cus_id:
            self._get("customer", cus_id, "customer")
        else:
            cus_id = self._create_customer({"email": s["customer_email"]})["id"]
        s["customer"] = cus_id
        cus = self._by_id[cus_id]
        s["customer_details"] = {"email": cus["email"] or s["customer_email"], "name": cus["name"]}
        if s["mode"] == "subscription":
            sub_data = s["subscription_data"]
            pm = self._attach_payment_method(self._payment_method(payment_method or "pm_card_visa"), cus_id)
            sub = self._create_subscription({
                "customer": cus_id, "items": s["_line_items"],
                "metadata": sub_data.get("metadata") or {},
                "trial_period_days": sub_data.get("trial_period_days"),
                "default_payment_method": pm["id"],
            })
            s["subscription"], s["invoice"] = sub["id"], sub["latest_invoice"]
        elif s["mode"] == "payment":
            pi = self._create_payment_intent({
                "amount": s["amount_total"], "currency": s["currency"], "customer": cus_id,
                "payment_method": payment_method or "pm_card_visa", "confirm": True,
                "metadata": (s["payment_intent_data"] or {}).get("metadata") or s["metadata"],
            })
            s["payment_intent"] = pi["id"]
        s["status"] = "complete"
        s["payment_status"] = "no_payment_required" if s["amount_total"] == 0 else "paid"
        self._emit("checkout.session.completed", s)
        return s

    def _expire_checkout(self, sid: str) -> dict:
        s = self._get("checkout.session", sid)
        if s["status"] != "open":
            raise StripeError(400, f"Only open sessions can be expired; {sid} is {s['status']}.")
        s["status"] = "expired"
        self._emit("checkout.session.expired", s)
        return s

    def _checkout_expire_http(self, req, oid):
        return self._respond(self._expire_checkout(oid), req)

    # ---- payment methods & setup intents -------------------------------------

    def _new_payment_method(self, token: str, param: str) -> dict:
        card = TEST_CARDS.get(_TOKEN_ALIASES.get(token, token))
        if card is None:
            raise _missing("PaymentMethod", token, param)
        year = datetime.fromtimestamp(self._now(), timezone.utc).year + 3
        brand = card["brand"]
        return self._store({
            "id": new_id("pm"), "object": "payment_method", "type": "card",
            "allow_redisplay": "unspecified",
            "billing_details": {"address": dict(_NULL_ADDRESS), "email": None, "name": None,
                                "phone": None, "tax_id": None},
            "card": {"brand": brand, "display_brand": brand, "last4": card["last4"],
                     "exp_month": 12, "exp_year": year, "country": "US",
                     "funding": card.get("funding", "credit"),
                     "fingerprint": hashlib.sha1(f"{brand}{card['last4']}".encode()).hexdigest()[:16],
                     "checks": {"address_line1_check": None, "address_postal_code_check": None,
                                "cvc_check": "pass"},
                     "generated_from": None, "networks": {"available": [brand], "preferred": None},
                     "three_d_secure_usage": {"supported": True}, "wallet": None,
                     "regulated_status": "unregulated"},
            "created": self._now(), "customer": None, "customer_account": None, "livemode": False,
            "metadata": {}, "_test_card": _TOKEN_ALIASES.get(token, token),
        })

    def _payment_method(self, ref: str | None, param: str = "payment_method") -> dict | None:
        """A stored PaymentMethod by id, or a new one from a test token (``pm_card_visa``)."""
        if not ref:
            return None
        existing = self._objects["payment_method"].get(ref)
        if existing is not None:
            return existing
        return self._new_payment_method(ref, param)

    def _card_decline(self, pm: dict, *, charging: bool) -> tuple[str, str, str] | None:
        """``(code, decline_code, message)`` if ``pm`` is refused: an injected
        failure (charges only) or the test card's own behaviour."""
        if charging and self._payment_failures:
            failure = self._payment_failures[0]
            failure["remaining"] -= 1
            if failure["remaining"] <= 0:
                self._payment_failures.pop(0)
            return failure["code"], failure["decline_code"], failure["message"]
        card = TEST_CARDS.get(pm.get("_test_card") or "", {})
        decline_code = card.get("decline") or (card.get("charge_decline") if charging else None)
        if decline_code:
            code, message = DECLINES[decline_code]
            return code, decline_code, message
        return None

    @staticmethod
    def _card_error(decline: tuple[str, str, str], **extra: Any) -> StripeError:
        code, decline_code, message = decline
        return StripeError(402, message, type="card_error", code=code, decline_code=decline_code,
                           doc_url=f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
                           **extra)

    def _attach_payment_method(self, pm: dict, customer_id: str, param: str = "customer") -> dict:
        self._get("customer", customer_id, param)
        if pm["customer"] == customer_id:
            return pm
        if pm["customer"]:
            raise StripeError(400, "The payment method you provided has already been attached to a "
                                   "customer.", code="payment_method_unexpected_state")
        decline = self._card_decline(pm, charging=False)
        if decline:  # Stripe validates the card when it is attached
            raise self._card_error(decline, param="payment_method")
        pm["customer"] = customer_id
        self._emit("payment_method.attached", pm)
        return pm

    def _require_attached(self, pm_id: str, customer_id: str, param: str) -> dict:
        pm = self._objects["payment_method"].get(pm_id)
        if pm is None or pm["customer"] != customer_id:
            raise StripeError(400, f"The customer does not have a payment method with the ID {pm_id}. "
                                   "The payment method must be attached to the customer.",
                              code="resource_missing", param=param)
        return pm

    def _payment_method_create(self, req):
        p = req.params
        if (p.get("type") or "card") != "card":
            raise StripeError(400, "Only type=card is supported by the fake.", param="type")
        token = (p.get("card") or {}).get("token") if isinstance(p.get("card"), dict) else None
        pm = self._new_payment_method(token or "pm_card_visa", "card[token]")
        if isinstance(p.get("billing_details"), dict):
            pm["billing_details"].update({k: v for k, v in p["billing_details"].items() if k != "address"})
        pm["metadata"] = _merge_metadata({}, p.get("metadata") or {})
        return self._respond(pm, req)

    def _payment_method_get(self, req, oid):
        return self._respond(self._get("payment_method", oid), req)

    def _payment_method_update(self, req, oid):
        pm, p = self._get("payment_method", oid), req.params
        before = copy.deepcopy(pm)
        if isinstance(p.get("billing_details"), dict):
            pm["billing_details"].update({k: v for k, v in p["billing_details"].items() if k != "address"})
        if isinstance(p.get("card"), dict):
            for k in ("exp_month", "exp_year"):
                if k in p["card"]:
                    pm["card"][k] = _int(p["card"][k], f"card[{k}]")
        pm["metadata"] = _merge_metadata(pm["metadata"], p.get("metadata"))
        self._emit("payment_method.updated", pm, _diff(before, pm))
        return self._respond(pm, req)

    def _payment_method_attach(self, req, oid):
        customer = req.params.get("customer")
        if not customer:
            raise StripeError(400, "Missing required param: customer.", code="parameter_missing",
                              param="customer")
        pm = self._payment_method(oid, "payment_method")
        return self._respond(self._attach_payment_method(pm, customer), req)

    def _detach_payment_method(self, pm: dict) -> dict:
        if not pm["customer"]:
            raise StripeError(400, "The payment method you provided is not attached to a customer so "
                                   "detachment is impossible.", code="payment_method_unexpected_state")
        cus = self._by_id.get(pm["customer"])
        previous = pm["customer"]
        pm["customer"] = None
        # Stripe forgets a detached card wherever it was the default.
        if cus and cus["invoice_settings"].get("default_payment_method") == pm["id"]:
            before = copy.deepcopy(cus)
            cus["invoice_settings"]["default_payment_method"] = None
            self._emit("customer.updated", cus, _diff(before, cus))
        for sub in self._objects["subscription"].values():
            if sub["customer"] == previous and sub["default_payment_method"] == pm["id"]:
                sub["default_payment_method"] = None
        self._emit("payment_method.detached", pm, {"customer": previous})
        return pm

    def _payment_method_detach(self, req, oid):
        return self._respond(self._detach_payment_method(self._get("payment_method", oid)), req)

    def _payment_method_list(self, req, customer: str | None = None):
        q = req.params
        customer = customer or q.get("customer")
        if customer:
            self._get("customer", customer, "customer")
        items = [pm for pm in self._objects["payment_method"].values()
                 if (not customer or pm["customer"] == customer)
                 and (not q.get("type") or pm["type"] == q["type"])]
        return 200, self._list_object(items, req.path, req)

    def _customer_payment_methods(self, req, customer_id):
        return self._payment_method_list(req, customer_id)

    def _create_setup_intent(self, p: dict) -> dict:
        if p.get("customer"):
            self._get("customer", p["customer"], "customer")
        pm = self._payment_method(p.get("payment_method"))
        now = self._now()
        si = self._store({
            "id": new_id("seti"), "object": "setup_intent", "application": None,
            "automatic_payment_methods": None, "cancellation_reason": None, "client_secret": None,
            "created": now, "customer": p.get("customer"), "customer_account": None,
            "description": p.get("description"), "excluded_payment_method_types": None,
            "flow_directions": None, "last_setup_error": None, "latest_attempt": None,
            "livemode": False, "mandate": None, "metadata": _merge_metadata({}, p.get("metadata") or {}),
            "next_action": None, "on_behalf_of": None, "payment_method": pm["id"] if pm else None,
            "payment_method_configuration_details": None,
            "payment_method_options": {"card": {"mandate_options": None, "network": None,
                                                "request_three_d_secure": "automatic"}},
            "payment_method_types": p.get("payment_method_types") or ["card"],
            "single_use_mandate": None,
            "status": "requires_confirmation" if pm else "requires_payment_method",
            "usage": p.get("usage") or "off_session",
        })
        si["client_secret"] = f"{si['id']}_secret_{uuid.uuid4().hex[:24]}"
        self._emit("setup_intent.created", si)
        if _bool(p.get("confirm")):
            self._confirm_setup_intent(si, None)
        return si

    def _confirm_setup_intent(self, si: dict, payment_method: str | None) -> dict:
        if si["status"] in ("succeeded", "canceled"):
            raise StripeError(400, f"You cannot confirm this SetupIntent because it has a status of "
                                   f"{si['status']}.", code="setup_intent_unexpected_state")
        pm = self._payment_method(payment_method) if payment_method else \
            self._by_id.get(si["payment_method"] or "")
        if pm is None:
            raise StripeError(400, "You cannot confirm this SetupIntent because it's missing a payment "
                                   "method.", code="setup_intent_unexpected_state")
        si["payment_method"] = pm["id"]
        decline = self._card_decline(pm, charging=False)
        if decline:
            code, decline_code, message = decline
            si["status"] = "requires_payment_method"
            si["last_setup_error"] = {"type": "card_error", "code": code, "decline_code": decline_code,
                                      "message": message, "payment_method": copy.deepcopy(_public(pm))}
            self._emit("setup_intent.setup_failed", si)
            raise self._card_error(decline, setup_intent=copy.deepcopy(_public(si)))
        if si["customer"]:
            self._attach_payment_method(pm, si["customer"])
        si.update(status="succeeded", last_setup_error=None)
        self._emit("setup_intent.succeeded", si)
        return si

    def _setup_intent_create(self, req):
        return self._respond(self._create_setup_intent(req.params), req)

    def _setup_intent_confirm(self, req, oid):
        return self._respond(self._confirm_setup_intent(self._get("setup_intent", oid),
                                                        req.params.get("payment_method")), req)

    def _setup_intent_cancel(self, req, oid):
        si = self._get("setup_intent", oid)
        if si["status"] in ("succeeded", "canceled"):
            raise StripeError(400, f"You cannot cancel this SetupIntent because it has a status of "
                                   f"{si['status']}.", code="setup_intent_unexpected_state")
        si.update(status="canceled", cancellation_reason=req.params.get("cancellation_reason"))
        self._emit("setup_intent.canceled", si)
        return self._respond(si, req)

    # ---- subscriptions -------------------------------------------------------------

    def _recurring_prices(self, raw_items: list, param: str = "items") -> list[dict]:
        prices = []
        for i, it in enumerate(raw_items):
            price = self._get("price", it.get("price") or "", f"{param}[{i}][price]")
            if not price["recurring"]:
                raise StripeError(400, "The price specified is set to `type=one_time` but this field "
                                       "only accepts prices with `type=recurring`.",
                                  param=f"{param}[{i}][price]")
            prices.append(price)
        return prices

    @staticmethod
    def _check_same_cycle(prices: list[dict]) -> None:
        first = prices[0]
        for price in prices[1:]:
            if price["currency"] != first["currency"]:
                raise StripeError(400, "Currency and interval fields must match across all plans on "
                                       "this subscription. Found mismatch in currency field.",
                                  param="items")
            if (price["recurring"]["interval"], price["recurring"]["interval_count"]) != \
                    (first["recurring"]["interval"], first["recurring"]["interval_count"]):
                raise StripeError(400, "Currency and interval fields must match across all plans on "
                                       "this subscription. Found mismatch in interval field.",
                                  param="items")

    @staticmethod
    def _cycle(sub: dict) -> tuple[str, int]:
        recurring = sub["items"]["data"][0]["price"]["recurring"] if sub["items"]["data"] else None
        recurring = recurring or {}
        return recurring.get("interval", "month"), recurring.get("interval_count") or 1

    def _make_item(self, sub: dict, price_id: str, quantity: int, param: str) -> dict:
        price = self._get("price", price_id, param)
        return {"id": new_id("si"), "object": "subscription_item", "subscription": sub["id"],
                "price": copy.deepcopy(price), "plan": _plan(price), "quantity": quantity,
                "created": self._now(), "metadata": {}, "discounts": [], "tax_rates": [],
                "billing_thresholds": None, "current_period_start": sub["current_period_start"],
                "current_period_end": sub["current_period_end"]}

    def _set_period(self, sub: dict, start: int, end: int) -> None:
        sub["current_period_start"], sub["current_period_end"] = start, end
        for item in sub["items"]["data"]:
            item["current_period_start"], item["current_period_end"] = start, end

    def _default_payment_method_of(self, sub: dict) -> dict | None:
        pm_id = sub["default_payment_method"] or \
            self._by_id[sub["customer"]]["invoice_settings"].get("default_payment_method")
        return self._objects["payment_method"].get(pm_id or "")

    def _trial_end_param(self, p: dict, now: int) -> int | None | str:
        """Seconds since epoch of the trial end, ``"now"``, or None (no trial given)."""
        if p.get("trial_end") not in (None, ""):
            if p["trial_end"] == "now":
                return "now"
            trial_end = _int(p["trial_end"], "trial_end")
            if trial_end <= now:
                raise StripeError(400, "Invalid timestamp: must be an integer Unix timestamp in the "
                                       "future.", param="trial_end")
            return trial_end
        days = _int(p.get("trial_period_days"), "trial_period_days")
        if days is not None:
            if days < 0 or days > 730:
                raise StripeError(400, "trial_period_days must be between 0 and 730.",
                                  param="trial_period_days")
            return now + days * 86400 if days else None
        return None

    def _create_subscription(self, p: dict) -> dict:
        cus = p.get("customer")
        if not cus:
            raise StripeError(400, "Missing required param: customer.",
                              code="parameter_missing", param="customer")
        customer = self._get("customer", cus, "customer")
        raw_items = p.get("items") or []
        if not raw_items:
            raise StripeError(400, "Missing required param: items.",
                              code="parameter_missing", param="items")
        prices = self._recurring_prices(raw_items)
        self._check_same_cycle(prices)
        behavior = p.get("payment_behavior") or "allow_incomplete"
        if behavior not in PAYMENT_BEHAVIORS:
            raise StripeError(400, f"Invalid payment_behavior: {behavior}", param="payment_behavior")
        now = self._now()
        trial_end = self._trial_end_param(p, now)
        trial_end = None if trial_end == "now" else trial_end
        default_pm = None
        if p.get("default_payment_method"):
            default_pm = self._require_attached(p["default_payment_method"], cus, "default_payment_method")
        interval, count = prices[0]["recurring"]["interval"], prices[0]["recurring"]["interval_count"]
        end = trial_end or _add_interval(now, interval, count)
        sub_id = new_id("sub")
        sub = {
            "id": sub_id, "object": "subscription", "customer": cus, "status": "incomplete",
            "application": None, "application_fee_percent": None,
            "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
            "billing_cycle_anchor": end if trial_end else now,
            "billing_cycle_anchor_config": None, "billing_mode": {"type": "classic"},
            "billing_thresholds": None, "cancel_at": None, "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": p.get("collection_method") or "charge_automatically",
            "created": now, "currency": prices[0]["currency"], "customer_account": None,
            "days_until_due": None, "default_payment_method": default_pm["id"] if default_pm else None,
            "default_source": None, "default_tax_rates": [], "description": p.get("description"),
            "discounts": [], "ended_at": None,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "latest_invoice": None, "livemode": False,
            "metadata": _merge_metadata({}, p.get("metadata") or {}),
            "next_pending_invoice_item_invoice": None, "on_behalf_of": None, "pause_collection": None,
            "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                                 "save_default_payment_method": "off"},
            "pending_invoice_item_interval": None, "pending_setup_intent": None,
            "pending_update": None, "schedule": None, "start_date": now, "test_clock": None,
            "transfer_data": None, "trial_end": trial_end, "trial_start": now if trial_end else None,
            "billing_schedules": [], "managed_payments": None,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "current_period_start": now, "current_period_end": end,
            "_pending_prorations": [],
        }
        data = [self._make_item(sub, it.get("price") or "", _int(it.get("quantity"), "quantity", 1),
                                f"items[{i}][price]") for i, it in enumerate(raw_items)]
        sub["items"] = {"object": "list", "data": data, "has_more": False, "total_count": len(data),
                        "url": f"/v1/subscription_items?subscription={sub_id}"}
        if _bool(p.get("cancel_at_period_end")):
            sub.update(cancel_at_period_end=True, cancel_at=end)
            sub["cancellation_details"]["reason"] = "cancellation_requested"
        lines = self._cycle_lines(sub, first=True)
        total = sum(line["amount"] for line in lines)
        pm = default_pm or self._default_payment_method_of(sub)
        # Decide the payment before anything is stored: with error_if_incomplete
        # a refused payment leaves no subscription behind (Stripe's 402).
        decline = None
        if total > 0 and behavior != "default_incomplete":
            if pm is None:
                if behavior == "error_if_incomplete":
                    raise StripeError(400, "This customer has no attached payment source or default "
                                           "payment method. Please consider adding a default payment "
                                           "method.", code="resource_missing")
            else:
                decline = self._card_decline(pm, charging=True)
                if decline and behavior == "error_if_incomplete":
                    raise self._card_error(decline)
        if total == 0:
            sub["status"] = "trialing" if trial_end else "active"
        elif behavior == "default_incomplete" or pm is None or decline:
            sub["status"] = "incomplete"
        else:
            sub["status"] = "active"
        self._store(sub)
        self._emit("customer.subscription.created", sub)
        if customer.get("currency") is None:
            customer["currency"] = sub["currency"]
        inv = self._invoice_now(sub, "subscription_create", lines,
                                pay=behavior != "default_incomplete", pm=pm, decline=decline)
        if inv["status"] == "open" and behavior != "default_incomplete":
            sub["status"] = "incomplete"
        return sub

    def _cycle_lines(self, sub: dict, *, first: bool = False) -> list[dict]:
        """One line per item for the current period (zero during a trial;
        metered items bill the previous period's usage in arrears), plus
        any prorations waiting for this invoice."""
        lines = []
        trialing = sub["trial_end"] is not None and sub["trial_end"] >= sub["current_period_end"]
        for item in sub["items"]["data"]:
            price = item["price"]
            recurring = price["recurring"] or {}
            metered = recurring.get("usage_type") == "metered"
            quantity, period = item["quantity"], (sub["current_period_start"], sub["current_period_end"])
            if metered:
                quantity = 0 if first else self._metered_usage(sub, price, item)
                period = (item.get("_previous_period_start", period[0]), period[0]) if not first else period
            amount = 0 if trialing and not metered else (price["unit_amount"] or 0) * quantity
            name = self._product_name(price)
            desc = (f"Trial period for {name}" if trialing and not metered else
                    f"{quantity} × {name} (at {_money(price['unit_amount'] or 0, price['currency'])}"
                    f" / {recurring.get('interval', 'month')})")
            lines.append({"item": item, "price": price, "quantity": quantity, "amount": amount,
                          "description": desc, "period": period, "proration": False})
        if not first:
            lines.extend(sub["_pending_prorations"])
            sub["_pending_prorations"] = []
        return lines

    def _metered_usage(self, sub: dict, price: dict, item: dict) -> int:
        meter = self._by_id.get((price["recurring"] or {}).get("meter") or "")
        if meter is None:
            return 0
        start = item.get("_previous_period_start", sub["current_period_start"])
        total = self.meter_event_total(meter["event_name"], sub["customer"], start,
                                       sub["current_period_start"])
        return max(int(total), 0)

    def _product_name(self, price: dict) -> str:
        product = self._by_id.get(price["product"]) if isinstance(price["product"], str) else price["product"]
        return (product or {}).get("name") or price.get("nickname") or price["id"]

    def _proration_lines(self, sub: dict, old_item: dict | None, new_item: dict | None,
                         at: int) -> list[dict]:
        """Credit for the unused time of what was removed, charge for the rest
        of the period of what was added (Stripe's prorations, by the second)."""
        start, end = sub["current_period_start"], sub["current_period_end"]
        if end <= start or at >= end:
            return []
        fraction = (end - max(at, start)) / (end - start)
        when = datetime.fromtimestamp(at, timezone.utc).strftime("%d %b %Y")
        lines = []
        for item, sign, words in ((old_item, -1, "Unused time on"), (new_item, 1, "Remaining time on")):
            if item is None or (item["price"]["recurring"] or {}).get("usage_type") == "metered":
                continue
            full = (item["price"]["unit_amount"] or 0) * item["quantity"]
            amount = sign * int(round(full * fraction))
            if amount == 0:
                continue
            lines.append({"item": item, "price": item["price"], "quantity": item["quantity"],
                          "amount": amount, "proration": True, "period": (max(at, start), end),
                          "description": f"{words} {item['quantity']} × {self._product_name(item['price'])} "
                                         f"after {when}"})
        return lines

    def _subscription_create_http(self, req):
        return self._respond(self._create_subscription(req.params), req)

    def _subscription_list(self, req):
        q = req.params
        status = q.get("status")
        items = [s for s in self._objects["subscription"].values()
                 if (not q.get("customer") or s["customer"] == q["customer"])
                 and (status == "all" or (s["status"] == status if status
                                          else s["status"] not in ("canceled", "incomplete_expired")))
                 and (not q.get("price") or any(i["price"]["id"] == q["price"]
                                                for i in s["items"]["data"]))]
        return 200, self._list_object(items, "/v1/subscriptions", req)

    def _subscription_update(self, req, oid):
        stored, p = self._get("subscription", oid), req.params
        if stored["status"] in ("canceled", "incomplete_expired"):
            raise StripeError(400, "A canceled subscription can only update its cancellation_details "
                                   "and metadata.")
        behavior = p.get("proration_behavior") or "create_prorations"
        if behavior not in PRORATION_BEHAVIORS:
            raise StripeError(400, f"Invalid proration_behavior: {behavior}", param="proration_behavior")
        payment_behavior = p.get("payment_behavior") or "allow_incomplete"
        now = self._now()
        at = _int(p.get("proration_date"), "proration_date", now)
        # Work on a copy and commit at the end, so a refused update (400/402)
        # leaves the subscription exactly as it was.
        sub = copy.deepcopy(stored)
        old_cycle = self._cycle(sub)
        data = sub["items"]["data"]
        changes: list[tuple[dict | None, dict | None]] = []
        for i, it in enumerate(p.get("items") or []):
            existing = next((d for d in data if d["id"] == it.get("id")), None) if it.get("id") else None
            if it.get("id") and existing is None:
                raise _missing("subscription item", it["id"], f"items[{i}][id]")
            if existing and _bool(it.get("deleted")):
                data.remove(existing)
                changes.append((existing, None))
            elif existing:
                before_item = copy.deepcopy(existing)
                if it.get("price"):
                    price = self._recurring_prices([it], "items")[0]
                    existing["price"], existing["plan"] = copy.deepcopy(price), _plan(price)
                existing["quantity"] = _int(it.get("quantity"), "quantity", existing["quantity"])
                if (before_item["price"]["id"], before_item["quantity"]) != \
                        (existing["price"]["id"], existing["quantity"]):
                    changes.append((before_item, existing))
            else:
                self._recurring_prices([it], "items")
                item = self._make_item(sub, it.get("price") or "",
                                       _int(it.get("quantity"), "quantity", 1), f"items[{i}][price]")
                data.append(item)
                changes.append((None, item))
        if not data:
            raise StripeError(400, "A subscription must have at least one active item.", param="items")
        self._check_same_cycle([d["price"] for d in data])
        sub["items"]["total_count"] = len(data)
        if "default_payment_method" in p:
            sub["default_payment_method"] = p["default_payment_method"] and self._require_attached(
                p["default_payment_method"], sub["customer"], "default_payment_method")["id"] or None
        if "cancel_at_period_end" in p:
            sub["cancel_at_period_end"] = _bool(p["cancel_at_period_end"])
            sub["cancel_at"] = sub["current_period_end"] if sub["cancel_at_period_end"] else None
            sub["cancellation_details"]["reason"] = \
                "cancellation_requested" if sub["cancel_at_period_end"] else None
        if p.get("cancel_at") not in (None, ""):
            sub["cancel_at"] = _int(p["cancel_at"], "cancel_at")
            sub["cancellation_details"]["reason"] = "cancellation_requested"
        elif p.get("cancel_at") == "":
            sub["cancel_at"] = None
        if isinstance(p.get("cancellation_details"), dict):
            for k in ("comment", "feedback"):
                if k in p["cancellation_details"]:
                    sub["cancellation_details"][k] = p["cancellation_details"][k] or None
        for f in ("description",):
            if f in p:
                sub[f] = p[f] or None
        sub["metadata"] = _merge_metadata(sub["metadata"], p.get("metadata"))

        invoice_lines: list[dict] | None = None
        trial_end = self._trial_end_param(p, now)
        if trial_end == "now" and sub["status"] == "trialing":
            # Ending a trial starts a paid period now and invoices it.
            sub.update(trial_end=now, status="active", billing_cycle_anchor=now)
            interval, count = self._cycle(sub)
            self._set_period(sub, now, _add_interval(now, interval, count))
            invoice_lines = self._cycle_lines(sub)
        elif isinstance(trial_end, int):
            sub.update(trial_end=trial_end, status="trialing", trial_start=sub["trial_start"] or now,
                       billing_cycle_anchor=trial_end)
            self._set_period(sub, sub["current_period_start"], trial_end)
        elif sub["status"] != "trialing" and (changes or p.get("billing_cycle_anchor") == "now"):
            if self._cycle(sub) != old_cycle or p.get("billing_cycle_anchor") == "now":
                # A new billing interval restarts the cycle now; Stripe credits
                # the unused time of the old items on the new invoice.
                credits = [] if behavior == "none" else [
                    line for old, _new in changes if old is not None
                    for line in self._proration_lines(stored, old, None, at)]
                unchanged = [d for d in stored["items"]["data"]
                             if all(old is None or old["id"] != d["id"] for old, _ in changes)]
                credits += [] if behavior == "none" else [
                    line for d in unchanged for line in self._proration_lines(stored, d, None, at)]
                interval, count = self._cycle(sub)
                self._set_period(sub, now, _add_interval(now, interval, count))
                sub["billing_cycle_anchor"] = now
                invoice_lines = self._cycle_lines(sub) + credits
            elif behavior != "none":
                prorations = [line for old, new in changes
                              for line in self._proration_lines(sub, old, new, at)]
                if behavior == "always_invoice":
                    invoice_lines = sub["_pending_prorations"] + prorations
                    sub["_pending_prorations"] = []
                else:
                    sub["_pending_prorations"].extend(prorations)
        pm = self._default_payment_method_of(sub)
        decline = None
        if invoice_lines and sum(line["amount"] for line in invoice_lines) > 0 and pm is not None:
            decline = self._card_decline(pm, charging=True)
            if decline and payment_behavior == "error_if_incomplete":
                raise self._card_error(decline)
        before = copy.deepcopy(stored)
        stored.clear()
        stored.update(sub)
        if invoice_lines:
            inv = self._invoice_now(stored, "subscription_update", invoice_lines, pay=True, pm=pm,
                                    decline=decline)
            if inv["status"] == "open" and stored["status"] == "active":
                stored["status"] = "past_due"
        self._emit("customer.subscription.updated", stored, _diff(before, stored))
        return self._respond(stored, req)

    def _cancel_subscription(self, oid: str, p: dict | None = None) -> dict:
        sub = self._get("subscription", oid)
        p = p or {}
        if sub["status"] == "canceled":
            raise StripeError(400, f"This subscription has already been canceled: {oid}")
        before = copy.deepcopy(sub)
        now = self._now()
        details = p.get("cancellation_details") if isinstance(p.get("cancellation_details"), dict) else {}
        sub["cancellation_details"] = {"comment": details.get("comment") or sub["cancellation_details"]["comment"],
                                       "feedback": details.get("feedback") or sub["cancellation_details"]["feedback"],
                                       "reason": "cancellation_requested"}
        lines = []
        if _bool(p.get("prorate")) and sub["status"] != "trialing":
            lines = [line for item in sub["items"]["data"]
                     for line in self._proration_lines(sub, item, None, now)]
        if _bool(p.get("invoice_now")):
            lines = sub["_pending_prorations"] + lines
            sub["_pending_prorations"] = []
        sub.update(status="canceled", canceled_at=now, ended_at=now, cancel_at_period_end=False,
                   cancel_at=None)
        self._emit("customer.subscription.deleted", sub, _diff(before, sub))
        if lines and _bool(p.get("invoice_now")):
            self._invoice_now(sub, "subscription_cycle", lines, pay=True,
                              pm=self._default_payment_method_of(sub), decline=None)
        return sub

    def _subscription_cancel(self, req, oid):
        return self._respond(self._cancel_subscription(oid, req.params), req)

    def _subscription_resume(self, req, oid):
        """Resume a paused subscription (Stripe's /resume is only for ``paused``)."""
        sub = self._get("subscription", oid)
        if sub["status"] != "paused":
            raise StripeError(400, "Subscription is not paused and cannot be resumed.")
        before = copy.deepcopy(sub)
        now = self._now()
        interval, count = self._cycle(sub)
        sub["status"] = "active"
        if req.params.get("billing_cycle_anchor", "now") == "now":
            self._set_period(sub, now, _add_interval(now, interval, count))
            sub["billing_cycle_anchor"] = now
            self._invoice_now(sub, "subscription_cycle", self._cycle_lines(sub), pay=True,
                              pm=self._default_payment_method_of(sub), decline=None)
        self._emit("customer.subscription.resumed", sub, _diff(before, sub))
        return self._respond(sub, req)

    def _advance_subscription(self, subscription_id: str, paid: bool | None) -> dict:
        sub = self._get("subscription", subscription_id)
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise StripeError(400, f"Subscription {subscription_id} is {sub['status']}.")
        before = copy.deepcopy(sub)
        end = sub["current_period_end"]
        if sub["cancel_at"] is not None and sub["cancel_at"] <= end:
            sub.update(status="canceled", canceled_at=self._now(), ended_at=end,
                       cancel_at_period_end=False)
            self._emit("customer.subscription.deleted", sub, _diff(before, sub))
            return sub
        interval, count = self._cycle(sub)
        for item in sub["items"]["data"]:
            item["_previous_period_start"] = sub["current_period_start"]
        sub["_ended_period"] = (sub["current_period_start"], end)
        self._set_period(sub, end, _add_interval(end, interval, count))
        lines = self._cycle_lines(sub)
        for item in sub["items"]["data"]:
            item.pop("_previous_period_start", None)
        pm = self._default_payment_method_of(sub)
        if paid is True:
            decline = None
        elif paid is False:
            decline = ("card_declined", "generic_decline", DECLINES["generic_decline"][1])
        else:
            decline = self._card_decline(pm, charging=True) if pm else None
        inv = self._invoice_now(sub, "subscription_cycle", lines, pay=True, pm=pm, decline=decline,
                                force=paid is True)
        sub.pop("_ended_period", None)
        sub["status"] = "active" if inv["status"] == "paid" else "past_due"
        self._emit("customer.subscription.updated", sub, _diff(before, sub))
        return sub

    # ---- invoices ------------------------------------------------------------------

    def _invoice_line(self, inv: dict, sub: dict, spec: dict) -> dict:
        price, item = spec["price"], spec["item"]
        return {
            "id": new_id("il"), "object": "line_item", "amount": spec["amount"],
            "currency": inv["currency"], "description": spec["description"],
            "discount_amounts": [], "discountable": not spec["proration"], "discounts": [],
            "invoice": inv["id"], "livemode": False, "metadata": {},
            "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                       "subscription_item_details": {
                           "invoice_item": new_id("ii") if spec["proration"] else None,
                           "proration": spec["proration"], "proration_details": {"credited_items": None},
                           "subscription": sub["id"], "subscription_item": item["id"]}},
            "period": {"start": spec["period"][0], "end": spec["period"][1]},
            "pretax_credit_amounts": [],
            "pricing": {"type": "price_details",
                        "price_details": {"price": price["id"], "product": price["product"]},
                        "unit_amount_decimal": price.get("unit_amount_decimal")},
            "quantity": spec["quantity"], "quantity_decimal": str(spec["quantity"]),
            "subscription": sub["id"], "subtotal": spec["amount"], "taxes": [],
        }

    def _create_invoice(self, sub: dict, reason: str, lines: list[dict]) -> dict:
        """A draft invoice for ``sub`` (``invoice.created``)."""
        cus = self._by_id[sub["customer"]]
        now = self._now()
        inv_id = new_id("in")
        inv: dict[str, Any] = {
            "id": inv_id, "object": "invoice", "account_country": "US", "account_name": "SaaSDesk Fake",
            "account_tax_ids": None, "amount_due": 0, "amount_overpaid": 0, "amount_paid": 0,
            "amount_remaining": 0, "amount_shipping": 0, "application": None, "attempt_count": 0,
            "attempted": False, "auto_advance": True,
            "automatic_tax": {"enabled": False, "liability": None, "status": None,
                              "disabled_reason": None, "provider": None},
            "automatically_finalizes_at": None, "billing_reason": reason,
            "collection_method": sub["collection_method"], "confirmation_secret": None,
            "created": now, "currency": sub["currency"], "custom_fields": None,
            "customer": sub["customer"], "customer_account": None, "customer_address": cus.get("address"),
            "customer_email": cus.get("email"), "customer_name": cus.get("name"),
            "customer_phone": cus.get("phone"), "customer_shipping": None, "customer_tax_exempt": "none",
            "customer_tax_ids": [], "default_payment_method": None, "default_source": None,
            "default_tax_rates": [], "description": None, "discounts": [], "due_date": None,
            "effective_at": None, "ending_balance": None, "footer": None, "from_invoice": None,
            "hosted_invoice_url": None, "invoice_pdf": None, "issuer": {"type": "self"},
            "last_finalization_error": None, "latest_revision": None,
            "lines": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                      "url": f"/v1/invoices/{inv_id}/lines"},
            "livemode": False, "metadata": {}, "next_payment_attempt": None, "number": None,
            "on_behalf_of": None,
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"subscription": sub["id"],
                                                "metadata": dict(sub["metadata"])}},
            "payment_settings": {"default_mandate": None, "payment_method_options": None,
                                 "payment_method_types": None},
            "period_start": sub["current_period_start"], "period_end": sub["current_period_end"],
            "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
            "receipt_number": None,
            "rendering": {"amount_tax_display": None, "pdf": {"page_size": "auto"}, "template": None,
                          "template_version": None},
            "shipping_cost": None, "shipping_details": None, "starting_balance": cus.get("balance", 0),
            "statement_descriptor": None, "status": "draft",
            "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                                   "paid_at": None, "voided_at": None},
            "subscription": sub["id"], "subtotal": 0, "subtotal_excluding_tax": 0, "test_clock": None,
            "total": 0, "total_discount_amounts": [], "total_excluding_tax": 0,
            "total_pretax_credit_amounts": [], "total_taxes": [], "webhooks_delivered_at": now,
        }
        if reason == "subscription_cycle" and sub.get("_ended_period"):
            # A cycle invoice's period is the one that just ended (its usage is
            # billed in arrears); its licensed lines cover the new period.
            inv["period_start"], inv["period_end"] = sub["_ended_period"]
        inv["lines"]["data"] = [self._invoice_line(inv, sub, spec) for spec in lines]
        inv["lines"]["total_count"] = len(lines)
        total = sum(line["amount"] for line in inv["lines"]["data"])
        inv.update(subtotal=total, subtotal_excluding_tax=total, total=total, total_excluding_tax=total,
                   amount_due=max(total, 0), amount_remaining=max(total, 0))
        self._store(inv)
        sub["latest_invoice"] = inv_id
        self._emit("invoice.created", inv)
        return inv

    def _finalize_invoice(self, inv: dict) -> dict:
        if inv["status"] != "draft":
            raise StripeError(400, "This invoice is already finalized, you can't re-finalize a "
                                   "non-draft invoice.")
        cus = self._by_id[inv["customer"]]
        now = self._now()
        inv["number"] = f"{cus['invoice_prefix']}-{cus['next_invoice_sequence']:04d}"
        cus["next_invoice_sequence"] += 1
        token = uuid.uuid4().hex[:24]
        inv.update(status="open", effective_at=now,
                   hosted_invoice_url=f"https://invoice.stripe.com/i/acct_fake/test_{token}",
                   invoice_pdf=f"https://pay.stripe.com/invoice/acct_fake/test_{token}/pdf")
        inv["status_transitions"]["finalized_at"] = now
        self._emit("invoice.finalized", inv)
        if inv["amount_due"] <= 0:
            self._mark_invoice_paid(inv)
        return inv

    def _mark_invoice_paid(self, inv: dict, out_of_band: bool = False) -> None:
        inv.update(status="paid", amount_paid=inv["amount_due"], amount_remaining=0,
                   next_payment_attempt=None, attempted=True)
        inv["status_transitions"]["paid_at"] = self._now()
        if inv["total"] < 0:  # a credit: Stripe adds it to the customer's balance
            cus = self._by_id[inv["customer"]]
            cus["balance"] += inv["total"]
            inv["ending_balance"] = cus["balance"]
        self._emit("invoice.paid", inv)
        self._emit("invoice.payment_succeeded", inv)
        sub = self._objects["subscription"].get(inv["subscription"] or "")
        if sub and sub["status"] in ("incomplete", "past_due", "unpaid") and sub["latest_invoice"] == inv["id"]:
            before = copy.deepcopy(sub)
            sub["status"] = "active"
            self._emit("customer.subscription.updated", sub, _diff(before, sub))

    def _pay_invoice(self, inv: dict, pm: dict | None, decline: Any = "check",
                     force: bool = False) -> dict:
        """Charge an open invoice: a PaymentIntent confirmed off-session with
        ``pm``. ``decline`` is decided by the caller when it already checked
        the card; ``force`` pays without a card (test hook)."""
        if inv["status"] != "open":
            raise StripeError(400, f"Invoice is already {inv['status']}.")
        inv["attempted"] = True
        inv["attempt_count"] += 1
        if force:
            self._mark_invoice_paid(inv)
            return inv
        pi = self._create_payment_intent({
            "amount": inv["amount_due"], "currency": inv["currency"], "customer": inv["customer"],
            "description": "Subscription creation" if inv["billing_reason"] == "subscription_create"
            else "Subscription update" if inv["billing_reason"] == "subscription_update" else None,
            "payment_method": pm["id"] if pm else None,
        })
        pi["_invoice"] = inv["id"]
        inv["_payment_intent"] = pi["id"]
        failed = pm is None
        if pm is not None:
            try:
                self._confirm_payment_intent(pi, None, decline=decline)
            except StripeError:
                failed = True
        if failed:
            inv["next_payment_attempt"] = self._now() + 3 * 86400
            self._emit("invoice.payment_failed", inv)
        else:
            inv["default_payment_method"] = None
            self._mark_invoice_paid(inv)
        return inv

    def _invoice_now(self, sub: dict, reason: str, lines: list[dict], *, pay: bool, pm: dict | None,
                     decline: Any, force: bool = False) -> dict:
        inv = self._create_invoice(sub, reason, lines)
        self._finalize_invoice(inv)
        if pay and inv["status"] == "open":
            self._pay_invoice(inv, pm, decline=decline, force=force)
        return inv

    def _invoice_action(self, action: str):
        def handler(req, oid):
            inv, p = self._get("invoice", oid), req.params
            if action == "finalize":
                self._finalize_invoice(inv)
            elif action == "pay":
                if inv["status"] == "paid":
                    raise StripeError(400, "Invoice is already paid.")
                if inv["status"] != "open":
                    raise StripeError(400, f"You can only pay open invoices; this one is {inv['status']}.")
                if _bool(p.get("paid_out_of_band")):
                    self._mark_invoice_paid(inv, out_of_band=True)
                else:
                    sub = self._objects["subscription"].get(inv["subscription"] or "")
                    pm = self._payment_method(p.get("payment_method")) if p.get("payment_method") else \
                        (self._default_payment_method_of(sub) if sub else None)
                    if pm is None:
                        raise StripeError(400, "This customer has no attached payment source or default "
                                               "payment method.", code="resource_missing")
                    self._pay_invoice(inv, pm)
                    if inv["status"] != "paid":
                        pi = self._by_id[inv["_payment_intent"]]
                        err = pi["last_payment_error"]
                        raise self._card_error((err["code"], err["decline_code"], err["message"]),
                                               payment_intent=copy.deepcopy(_public(pi)))
            elif action in ("void", "mark_uncollectible"):
                if inv["status"] != "open":
                    raise StripeError(400, f"You can only {action.replace('_', ' ')} open invoices; "
                                           f"this one is {inv['status']}.")
                now = self._now()
                if action == "void":
                    inv.update(status="void", amount_remaining=0)
                    inv["status_transitions"]["voided_at"] = now
                    self._emit("invoice.voided", inv)
                else:
                    inv["status"] = "uncollectible"
                    inv["status_transitions"]["marked_uncollectible_at"] = now
                    self._emit("invoice.marked_uncollectible", inv)
                inv["next_payment_attempt"] = None
            return self._respond(inv, req)
        return handler

    def _invoice_lines(self, req, oid):
        inv = self._get("invoice", oid)
        return 200, self._list_object(list(reversed(inv["lines"]["data"])), f"/v1/invoices/{oid}/lines", req)

    # ---- payment intents, charges, refunds, disputes --------------------------------

    def _create_payment_intent(self, p: dict) -> dict:
        amount = _int(p.get("amount"), "amount")
        if amount is None or amount < 1:
            raise StripeError(400, "Missing required param: amount.", code="parameter_missing",
                              param="amount")
        if not p.get("currency"):
            raise StripeError(400, "Missing required param: currency.", code="parameter_missing",
                              param="currency")
        if p.get("customer"):
            self._get("customer", p["customer"], "customer")
        pm = self._payment_method(p.get("payment_method"))
        if pm is not None and pm["customer"] and pm["customer"] != p.get("customer"):
            raise StripeError(400, "The provided PaymentMethod belongs to a Customer, but you did not "
                                   "provide the matching Customer.", param="payment_method")
        pi = self._store({
            "id": new_id("pi"), "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_details": {"tip": {}}, "amount_received": 0, "application": None,
            "application_fee_amount": None, "automatic_payment_methods": None, "canceled_at": None,
            "cancellation_reason": None, "capture_method": "automatic", "client_secret": None,
            "confirmation_method": "automatic", "created": self._now(),
            "currency": p["currency"].lower(), "customer": p.get("customer"), "customer_account": None,
            "description": p.get("description"), "excluded_payment_method_types": None,
            "last_payment_error": None, "latest_charge": None, "livemode": False,
            "metadata": _merge_metadata({}, p.get("metadata") or {}), "next_action": None,
            "on_behalf_of": None, "payment_method": pm["id"] if pm else None,
            "payment_method_configuration_details": None,
            "payment_method_options": {"card": {"installments": None, "mandate_options": None,
                                                "network": None, "request_three_d_secure": "automatic"}},
            "payment_method_types": p.get("payment_method_types") or ["card"], "processing": None,
            "receipt_email": p.get("receipt_email"), "review": None,
            "setup_future_usage": p.get("setup_future_usage"), "shipping": None, "source": None,
            "statement_descriptor": None, "statement_descriptor_suffix": None,
            "status": "requires_confirmation" if pm else "requires_payment_method",
            "transfer_data": None, "transfer_group": None, "managed_payments": None,
            "off_session": _bool(p.get("off_session")),
        })
        pi["client_secret"] = f"{pi['id']}_secret_{uuid.uuid4().hex[:16]}"
        self._emit("payment_intent.created", pi)
        if _bool(p.get("confirm")):
            self._confirm_payment_intent(pi, None)
        return pi

    def _confirm_payment_intent(self, pi: dict, payment_method: str | None, decline: Any = "check") -> None:
        if payment_method:
            pi["payment_method"] = self._payment_method(payment_method)["id"]
        pm = self._by_id.get(pi["payment_method"] or "")
        if pm is None:
            raise StripeError(400, "You cannot confirm this PaymentIntent because it's missing a "
                                   "payment method.", code="payment_intent_unexpected_state")
        if decline == "check":
            decline = self._card_decline(pm, charging=True)
        charge = self._new_charge(pi, pm)
        if decline:
            code, decline_code, message = decline
            charge.update(status="failed", paid=False, captured=False, amount_captured=0,
                          failure_code=code, failure_message=message,
                          outcome={**charge["outcome"], "network_status": "declined_by_network",
                                   "reason": decline_code, "type": "issuer_declined",
                                   "seller_message": "The bank did not return any further details "
                                                     "with this decline."})
            err = {"type": "card_error", "code": code, "decline_code": decline_code, "message": message,
                   "charge": charge["id"], "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
                   "payment_method": copy.deepcopy(_public(pm))}
            pi.update(status="requires_action" if code == "authentication_required" else "requires_payment_method",
                      last_payment_error=err, latest_charge=charge["id"])
            self._emit("charge.failed", charge)
            self._emit("payment_intent.payment_failed", pi)
            raise self._card_error(decline, charge=charge["id"], payment_intent=copy.deepcopy(_public(pi)),
                                   payment_method=copy.deepcopy(_public(pm)))
        pi.update(status="succeeded", amount_received=pi["amount"], latest_charge=charge["id"],
                  last_payment_error=None)
        if pi["setup_future_usage"] and pi["customer"] and not pm["customer"]:
            self._attach_payment_method(pm, pi["customer"])
        self._emit("charge.succeeded", charge)
        self._emit("payment_intent.succeeded", pi)
        if TEST_CARDS.get(pm.get("_test_card") or "", {}).get("dispute"):
            self._create_dispute(charge["id"], None, "fraudulent")

    def _new_charge(self, pi: dict, pm: dict) -> dict:
        card = pm["card"]
        charge_id = new_id("ch")
        return self._store({
            "id": charge_id, "object": "charge", "amount": pi["amount"], "amount_captured": pi["amount"],
            "amount_refunded": 0, "application": None, "application_fee": None,
            "application_fee_amount": None, "balance_transaction": new_id("txn"),
            "billing_details": copy.deepcopy(pm["billing_details"]),
            "calculated_statement_descriptor": "SAASDESK", "captured": True, "created": self._now(),
            "currency": pi["currency"], "customer": pi["customer"], "description": pi["description"],
            "disputed": False, "failure_balance_transaction": None, "failure_code": None,
            "failure_message": None, "fraud_details": {}, "livemode": False,
            "metadata": dict(pi["metadata"]), "on_behalf_of": None,
            "outcome": {"advice_code": None, "network_advice_code": None, "network_decline_code": None,
                        "network_status": "approved_by_network", "reason": None, "risk_level": "normal",
                        "risk_score": 32, "seller_message": "Payment complete.", "type": "authorized"},
            "paid": True, "payment_intent": pi["id"], "payment_method": pm["id"],
            "payment_method_details": {"type": "card", "card": {
                "amount_authorized": pi["amount"], "brand": card["brand"], "checks": card["checks"],
                "country": card["country"], "exp_month": card["exp_month"], "exp_year": card["exp_year"],
                "fingerprint": card["fingerprint"], "funding": card["funding"], "last4": card["last4"],
                "network": card["brand"], "three_d_secure": None, "wallet": None}},
            "receipt_email": None, "receipt_number": None,
            "receipt_url": f"https://pay.stripe.com/receipts/payment/{charge_id}",
            "refunded": False,
            "refunds": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                        "url": f"/v1/charges/{charge_id}/refunds"},
            "review": None, "shipping": None, "source": None, "source_transfer": None,
            "statement_descriptor": None, "statement_descriptor_suffix": None, "status": "succeeded",
            "transfer_data": None, "transfer_group": None,
        })

    def _payment_intent_create(self, req):
        return self._respond(self._create_payment_intent(req.params), req)

    def _payment_intent_confirm(self, req, oid):
        pi = self._get("payment_intent", oid)
        if pi["status"] in ("succeeded", "canceled"):
            raise StripeError(400, f"This PaymentIntent's status is {pi['status']}, so it cannot be "
                                   "confirmed.", code="payment_intent_unexpected_state")
        self._confirm_payment_intent(pi, req.params.get("payment_method"))
        return self._respond(pi, req)

    def _payment_intent_cancel(self, req, oid):
        pi = self._get("payment_intent", oid)
        if pi["status"] in ("succeeded", "canceled"):
            raise StripeError(400, f"You cannot cancel this PaymentIntent because it has a status of "
                                   f"{pi['status']}.", code="payment_intent_unexpected_state")
        pi.update(status="canceled", canceled_at=self._now(),
                  cancellation_reason=req.params.get("cancellation_reason") or "requested_by_customer")
        self._emit("payment_intent.canceled", pi)
        return self._respond(pi, req)

    def _create_refund(self, p: dict) -> dict:
        if p.get("payment_intent"):
            pi = self._get("payment_intent", p["payment_intent"], "payment_intent")
            charge_id = pi["latest_charge"] if pi["status"] == "succeeded" else None
        else:
            charge_id = p.get("charge")
        if not charge_id:
            raise StripeError(400, "This PaymentIntent does not have a successful charge to refund.",
                              param="payment_intent")
        charge = self._get("charge", charge_id, "charge")
        if charge["disputed"]:
            raise StripeError(400, f"Charge {charge_id} has been charged back; cannot issue a refund.",
                              code="charge_disputed")
        if charge["refunded"]:
            raise StripeError(400, f"Charge {charge_id} has already been refunded.",
                              code="charge_already_refunded")
        amount = _int(p.get("amount"), "amount", charge["amount"] - charge["amount_refunded"])
        if amount < 1 or charge["amount_refunded"] + amount > charge["amount"]:
            raise StripeError(400, f"Refund amount ({amount}) is greater than unrefunded amount on "
                                   f"charge ({charge['amount'] - charge['amount_refunded']}).",
                              code="amount_too_large", param="amount")
        refund = self._store({
            "id": new_id("re"), "object": "refund", "amount": amount, "balance_transaction": new_id("txn"),
            "charge": charge_id, "created": self._now(), "currency": charge["currency"],
            "customer": charge["customer"], "customer_account": None,
            "destination_details": {"type": "card", "card": {"reference": None, "reference_status": "pending",
                                                             "reference_type": "acquirer_reference_number",
                                                             "type": "refund"}},
            "metadata": _merge_metadata({}, p.get("metadata") or {}),
            "payment_intent": charge["payment_intent"], "payment_method": charge["payment_method"],
            "reason": p.get("reason"), "receipt_number": None, "source_transfer_reversal": None,
            "status": "succeeded", "transfer_reversal": None,
        })
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        charge["refunds"]["data"].insert(0, copy.deepcopy(_public(refund)))
        charge["refunds"]["total_count"] += 1
        self._emit("refund.created", refund)
        self._emit("charge.refunded", charge, {"amount_refunded": charge["amount_refunded"] - amount})
        return refund

    def _refund_create(self, req):
        return self._respond(self._create_refund(req.params), req)

    def _create_dispute(self, charge_ref: str, amount: int | None, reason: str) -> dict:
        charge = self._by_id.get(charge_ref)
        if charge is not None and charge["object"] == "payment_intent":
            charge = self._by_id.get(charge["latest_charge"] or "")
        if charge is None or charge["object"] != "charge" or charge["status"] != "succeeded":
            raise StripeError(400, f"No successful charge to dispute: {charge_ref}", param="charge")
        if charge["disputed"]:
            raise StripeError(400, f"Charge {charge['id']} is already disputed.", param="charge")
        now = self._now()
        pm_details = charge["payment_method_details"]["card"]
        dispute = self._store({
            "id": new_id("dp"), "object": "dispute",
            "amount": amount or charge["amount"] - charge["amount_refunded"],
            "balance_transactions": [], "charge": charge["id"], "created": now,
            "currency": charge["currency"], "enhanced_eligibility_types": [],
            "evidence": {k: None for k in (
                "access_activity_log", "billing_address", "cancellation_policy",
                "cancellation_policy_disclosure", "cancellation_rebuttal", "customer_communication",
                "customer_email_address", "customer_name", "customer_purchase_ip", "customer_signature",
                "duplicate_charge_documentation", "duplicate_charge_explanation", "duplicate_charge_id",
                "product_description", "receipt", "refund_policy", "refund_policy_disclosure",
                "refund_refusal_explanation", "service_date", "service_documentation",
                "shipping_address", "shipping_carrier", "shipping_date", "shipping_documentation",
                "shipping_tracking_number", "uncategorized_file", "uncategorized_text")},
            "evidence_details": {"due_by": now + 7 * 86400, "has_evidence": False, "past_due": False,
                                 "submission_count": 0, "enhanced_eligibility": {}},
            "is_charge_refundable": False, "livemode": False, "metadata": {},
            "payment_intent": charge["payment_intent"],
            "payment_method_details": {"type": "card", "card": {
                "brand": pm_details["brand"], "case_type": "chargeback", "network_reason_code": "10.4",
                "network": pm_details["network"]}},
            "reason": reason, "status": "needs_response",
        })
        charge["disputed"] = True
        self._emit("charge.dispute.created", dispute)
        return dispute

    def _close_dispute(self, dispute_id: str, status: str) -> dict:
        dispute = self._get("dispute", dispute_id)
        if dispute["status"] in ("won", "lost"):
            raise StripeError(400, f"This dispute is already closed ({dispute['status']}).")
        before = copy.deepcopy(dispute)
        dispute["status"] = status
        if status == "lost":
            dispute["balance_transactions"] = [{"id": new_id("txn"), "object": "balance_transaction",
                                                "amount": -dispute["amount"], "type": "adjustment"}]
            self._emit("charge.dispute.funds_withdrawn", dispute)
        self._emit("charge.dispute.closed", dispute, _diff(before, dispute))
        return dispute

    def _dispute_close_http(self, req, oid):
        # Closing a dispute means accepting it: Stripe marks it lost.
        return self._respond(self._close_dispute(oid, "lost"), req)

    def _dispute_update(self, req, oid):
        dispute, p = self._get("dispute", oid), req.params
        before = copy.deepcopy(dispute)
        if isinstance(p.get("evidence"), dict):
            dispute["evidence"].update(p["evidence"])
            dispute["evidence_details"]["has_evidence"] = True
        if _bool(p.get("submit"), True) and isinstance(p.get("evidence"), dict):
            dispute["status"] = "under_review"
            dispute["evidence_details"]["submission_count"] += 1
        dispute["metadata"] = _merge_metadata(dispute["metadata"], p.get("metadata"))
        self._emit("charge.dispute.updated", dispute, _diff(before, dispute))
        return self._respond(dispute, req)

    # ---- billing meters (v1) -------------------------------------------------

    def _create_meter(self, p: dict) -> dict:
        for f in ("event_name", "display_name"):
            if not p.get(f):
                raise StripeError(400, f"Missing required param: {f}.", code="parameter_missing",
                                  param=f)
        if self._meter_for(p["event_name"]):
            raise StripeError(400, f"An active meter with event_name `{p['event_name']}` "
                                   "already exists.", param="event_name")
        agg = (p.get("default_aggregation") or {}).get("formula", "sum")
        now = self._now()
        return self._store({
            "id": new_id("mtr"), "object": "billing.meter", "event_name": p["event_name"],
            "display_name": p["display_name"], "default_aggregation": {"formula": agg},
            "customer_mapping": {"type": "by_id", "event_payload_key":
                                 (p.get("customer_mapping") or {}).get("event_payload_key",
                                                                       "stripe_customer_id")},
            "value_settings": {"event_payload_key":
                               (p.get("value_settings") or {}).get("event_payload_key", "value")},
            "event_time_window": p.get("event_time_window"), "status": "active",
            "status_transitions": {"deactivated_at": None}, "created": now, "updated": now,
            "livemode": False,
        })

    def _meter_create(self, req):
        return self._respond(self._create_meter(req.params), req)

    def _meter_for(self, event_name: str) -> dict | None:
        for m in self._objects["billing.meter"].values():
            if m["event_name"] == event_name and m["status"] == "active":
                return m
        return None

    def _validate_meter_event(self, ev: dict) -> tuple[dict | None, str | None]:
        """Semantic checks shared by v1 (synchronous 400) and v2 (async: the
        event is dropped into ``meter_event_errors``). Returns (record, error)."""
        name = ev.get("event_name")
        meter = self._meter_for(name) if name else None
        if meter is None and self.strict_meters:
            return None, f"No active meter found for event_name `{name}`."
        payload = ev.get("payload") or {}
        ckey = meter["customer_mapping"]["event_payload_key"] if meter else "stripe_customer_id"
        vkey = meter["value_settings"]["event_payload_key"] if meter else "value"
        customer = payload.get(ckey)
        if not customer:
            return None, f"Missing `{ckey}` in payload."
        raw_value = payload.get(vkey)
        if raw_value is None and meter and meter["default_aggregation"]["formula"] == "count":
            raw_value = "1"
        value = _number(raw_value)
        if value is None:
            return None, f"Invalid or missing numeric `{vkey}` in payload."
        now = self.clock()
        ts = _parse_ts(ev.get("timestamp"))
        ts = now if ts is None else ts
        if ts < now - METER_EVENT_MAX_AGE:
            return None, "timestamp_too_far_in_past"
        if ts > now + METER_EVENT_MAX_FUTURE:
            return None, "timestamp_too_far_in_future"
        return {"event_name": name, "identifier": ev.get("identifier") or new_id("mev"),
                "customer": customer, "value": value, "timestamp": int(ts),
                "payload": {k: str(v) for k, v in payload.items()}, "received_at": now,
                "cancelled": False}, None

    def _record_meter_event(self, record: dict, source: str) -> bool:
        if record["identifier"] in self._meter_events_by_identifier:
            self._duplicate_meter_events += 1
            return False
        record["source"] = source
        self._meter_events.append(record)
        self._meter_events_by_identifier[record["identifier"]] = record
        return True

    def _v1_meter_event_create(self, req):
        p = req.params
        for f in ("event_name", "payload"):
            if not p.get(f):
                raise StripeError(400, f"Missing required param: {f}.", code="parameter_missing",
                                  param=f)
        record, error = self._validate_meter_event(p)
        if error:
            code = error if error.startswith("timestamp_") else None
            raise StripeError(400, error, code=code,
                              param="timestamp" if code else "payload")
        if record["identifier"] in self._meter_events_by_identifier:
            raise StripeError(400, f"An event already exists with identifier {record['identifier']}.",
                              code="duplicate_meter_event", param="identifier",
                              headers={"Stripe-Should-Retry": "false"})
        self._record_meter_event(record, "v1")
        return 200, {"object": "billing.meter_event", "event_name": record["event_name"],
                     "identifier": record["identifier"], "payload": record["payload"],
                     "timestamp": record["timestamp"], "created": int(record["received_at"]),
                     "livemode": False}

    def _meter_event_adjustment(self, req):
        p = req.params
        if (p.get("type") or "cancel") != "cancel":
            raise StripeError(400, "Only type=cancel is supported.", param="type")
        identifier = (p.get("cancel") or {}).get("identifier")
        record = self._meter_events_by_identifier.get(identifier or "")
        if record is None or (p.get("event_name") and record["event_name"] != p["event_name"]):
            raise StripeError(400, f"No meter event found with identifier `{identifier}`.",
                              code="resource_missing", param="cancel[identifier]")
        if record["received_at"] < self.clock() - 24 * 3600:
            raise StripeError(400, "Meter events can only be cancelled within 24 hours.",
                              param="cancel[identifier]")
        record["cancelled"] = True
        body = {"event_name": record["event_name"], "livemode": False, "status": "pending",
                "type": "cancel", "cancel": {"identifier": identifier}}
        if req.api_mode == "v2":
            return 200, {"object": "v2.billing.meter_event_adjustment", "id": new_id("mea"),
                         "created": _iso(self.clock()), **body}
        return 200, {"object": "billing.meter_event_adjustment", **body}

    def _meter_event_summaries(self, req, meter_id):
        meter = self._get("billing.meter", meter_id)
        q = req.params
        for f in ("customer", "start_time", "end_time"):
            if not q.get(f):
                raise StripeError(400, f"Missing required param: {f}.", code="parameter_missing",
                                  param=f)
        start, end = _int(q["start_time"], "start_time"), _int(q["end_time"], "end_time")
        window = {"hour": 3600, "day": 86400}.get(q.get("value_grouping_window") or "", 0)
        buckets = [(s, min(s + window, end)) for s in range(start, end, window)] if window \
            else [(start, end)]
        summaries = []
        for b_start, b_end in buckets:
            values = [e["value"] for e in self._meter_events
                      if e["event_name"] == meter["event_name"] and e["customer"] == q["customer"]
                      and not e["cancelled"] and b_start <= e["timestamp"] < b_end]
            if meter["default_aggregation"]["formula"] == "count":
                agg = len(values)
            elif meter["default_aggregation"]["formula"] == "last":
                agg = values[-1] if values else 0
            else:
                agg = sum(values)
            summaries.append({"id": f"mtrusum_{meter_id[4:]}{b_start}", "object": "billing.meter_event_summary",
                              "aggregated_value": agg, "start_time": b_start, "end_time": b_end,
                              "meter": meter_id, "livemode": False})
        return 200, self._list_object(summaries, req.path, req)

    # ---- meter events (v2) ------------------------------------------------------

    def _v2_session_create(self, req):
        now = self.clock()
        session = {"id": new_id("mes"), "object": "v2.billing.meter_event_session",
                   "authentication_token": "token_" + uuid.uuid4().hex, "created": _iso(now),
                   "expires_at": _iso(now + self.session_ttl), "livemode": False,
                   "_expires": now + self.session_ttl}
        self._sessions[session["authentication_token"]] = session
        return 200, {k: v for k, v in session.items() if not k.startswith("_")}

    def _v2_stream(self, req):
        events = req.params.get("events") if isinstance(req.params, dict) else None
        if not isinstance(events, list) or not events:
            raise StripeError(400, "Missing required param: events.", code="parameter_missing",
                              param="events")
        if len(events) > STREAM_MAX_EVENTS:
            raise StripeError(400, f"events: at most {STREAM_MAX_EVENTS} events per request "
                                   f"(got {len(events)}).", code="invalid_array_length",
                              param="events")
        for i, ev in enumerate(events):
            if not isinstance(ev, dict) or not ev.get("event_name") \
                    or not isinstance(ev.get("payload"), dict):
                raise StripeError(400, f"events[{i}]: event_name and payload are required.",
                                  code="parameter_missing", param=f"events[{i}]")
        # Schema valid: accept the batch; semantic errors are asynchronous in Stripe.
        for ev in events:
            record, error = self._validate_meter_event(ev)
            if error:
                self._meter_event_errors.append({"event": ev, "error": error})
            else:
                self._record_meter_event(record, "v2")
        return 202, {}

    def _v2_meter_event_create(self, req):
        record, error = self._validate_meter_event(req.params)
        if error:
            raise StripeError(400, error, param="payload")
        self._record_meter_event(record, "v2")
        return 200, {"object": "v2.billing.meter_event", "created": _iso(record["received_at"]),
                     "event_name": record["event_name"], "identifier": record["identifier"],
                     "payload": record["payload"], "timestamp": _iso(record["timestamp"]),
                     "livemode": False}

    # ---- events & webhooks -------------------------------------------------------

    def build_event(self, type: str, data_object: dict | str,
                    previous_attributes: dict | None = None, **fields: Any) -> dict:
        """A Stripe ``Event`` dict. ``data_object`` may be an object or the id
        of a stored object (its current state is snapshotted)."""
        if isinstance(data_object, str):
            with self._lock:
                data_object = self._by_id[data_object]
        data: dict[str, Any] = {"object": copy.deepcopy(_public(data_object))}
        if previous_attributes:
            data["previous_attributes"] = previous_attributes
        event = {"id": new_id("evt"), "object": "event", "type": type, "created": self._now(),
                 "api_version": API_VERSION, "livemode": False, "pending_webhooks": 1,
                 "request": {"id": None, "idempotency_key": None}, "data": data}
        event.update(fields)
        return event

    def _emit(self, type: str, obj: dict, previous_attributes: dict | None = None) -> dict:
        event = self.build_event(type, obj, previous_attributes)
        self._store(event)
        self._events.append(event)
        if self.webhook_url and self._webhook_thread is not None:
            self._webhook_queue.put(event)
        return event

    @staticmethod
    def sign_payload(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
        """The ``Stripe-Signature`` header: ``t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<payload>")>``."""
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8")
        t = int(time.time()) if timestamp is None else int(timestamp)
        sig = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
        return f"t={t},v1={sig}"

    def send_webhook(self, url: str, event: dict, secret: str, timestamp: int | None = None,
                     timeout: float = 10) -> tuple[int, str]:
        """POST a signed event like Stripe does; returns ``(status, body)``."""
        payload = json.dumps(event, indent=2).encode()
        req = urllib.request.Request(url, data=payload, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": self.sign_payload(payload, secret, timestamp),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        })
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def _webhook_worker(self) -> None:
        while True:
            event = self._webhook_queue.get()
            try:
                if event is None:
                    return
                try:
                    status, body = self.send_webhook(self.webhook_url, event, self.webhook_secret or "")
                    result = {"event_id": event["id"], "type": event["type"], "status": status,
                              "body": body[:500]}
                except Exception as e:  # network errors are recorded, never raised
                    result = {"event_id": event["id"], "type": event["type"], "status": None,
                              "error": repr(e)}
                with self._lock:
                    self.webhook_deliveries.append(result)
            finally:
                self._webhook_queue.task_done()

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Block until queued webhook deliveries are done (True) or timeout."""
        deadline = time.monotonic() + timeout
        while self._webhook_queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # ---- failure injection (Python API) -------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500, retry_after: int | None = None,
                  paths: list[str] | str | None = None, code: str | None = None,
                  should_retry: bool | None = None) -> None:
        """The next ``n`` requests (whose path starts with one of ``paths``)
        get ``status`` with a Stripe error body; state is untouched."""
        paths = [paths] if isinstance(paths, str) else paths
        with self._lock:
            self._failure_rules.append(_FailureRule(n, status, retry_after, paths, code, should_retry))

    def fail_randomly(self, rate: float = 0.3, status: int = 500, seed: int | None = None,
                      paths: list[str] | str | None = None) -> None:
        """Fail each matching request with probability ``rate`` (0 disables)."""
        paths = [paths] if isinstance(paths, str) else paths
        with self._lock:
            self._random_failure = (rate, status, random.Random(seed), tuple(paths) if paths else None) \
                if rate > 0 else None

    def hang_next(self, n: int = 1, seconds: float = 5.0, paths: list[str] | str | None = None,
                  then: str = "close") -> None:
        """Stall the next ``n`` requests for ``seconds`` (set it above the
        client timeout). ``then="close"`` drops the connection unprocessed;
        ``then="process"`` handles it after the stall (the "Stripe did it but
        the client timed out" case, which idempotency keys must absorb)."""
        paths = [paths] if isinstance(paths, str) else paths
        with self._lock:
            self._failure_rules.append(_FailureRule(n, paths=paths, hang_seconds=seconds, then=then))

    def fail_next_payments(self, n: int = 1, code: str = "card_declined",
                           decline_code: str = "insufficient_funds",
                           message: str = "Your card has insufficient funds.") -> None:
        """The next ``n`` PaymentIntent confirmations fail with a 402 card_error
        (``code="authentication_required"`` leaves status ``requires_action``)."""
        with self._lock:
            self._payment_failures.append({"remaining": n, "code": code,
                                           "decline_code": decline_code, "message": message})

    def clear_failures(self) -> None:
        with self._lock:
            self._failure_rules.clear()
            self._random_failure = None
            self._payment_failures.clear()

    def expire_sessions(self) -> None:
        """Expire every meter event session token issued so far."""
        with self._lock:
            for s in self._sessions.values():
                s["_expires"] = self.clock() - 1

    # ---- test helpers (Python API; return deep copies) ------------------------------

    def _locked(self, fn: Callable, *args: Any) -> dict:
        with self._lock:
            return _public(copy.deepcopy(fn(*args)))

    def create_customer(self, **params: Any) -> dict:
        return self._locked(self._create_customer, params)

    def create_product(self, **params: Any) -> dict:
        return self._locked(self._create_product, params)

    def create_price(self, **params: Any) -> dict:
        """e.g. ``create_price(product=..., unit_amount=2900, currency="usd",
        recurring={"interval": "month"}, lookup_key="pro_monthly")``."""
        return self._locked(self._create_price, params)

    def create_meter(self, event_name: str, display_name: str | None = None, **params: Any) -> dict:
        params.update(event_name=event_name, display_name=display_name or event_name)
        return self._locked(self._create_meter, params)

    def create_subscription(self, customer: str, prices: list[str], **params: Any) -> dict:
        """Without a payment method (given or the customer's default), a
        visa test card is attached first, as a completed checkout would."""
        params.update(customer=customer, items=[{"price": p} for p in prices])

        def apply():
            cus = self._get("customer", customer, "customer")
            if not params.get("default_payment_method") and \
                    not cus["invoice_settings"]["default_payment_method"]:
                params["default_payment_method"] = self._attach_payment_method(
                    self._payment_method("pm_card_visa"), customer)["id"]
            return self._create_subscription(params)
        return self._locked(apply)

    def complete_checkout_session(self, session_id: str, customer: str | None = None,
                                  payment_method: str | None = None) -> dict:
        """Pay an open session: creates the customer if needed, then the
        subscription (mode=subscription) or PaymentIntent (mode=payment)."""
        return self._locked(self._complete_checkout, session_id, customer, payment_method)

    def expire_checkout_session(self, session_id: str) -> dict:
        return self._locked(self._expire_checkout, session_id)

    def cancel_subscription(self, subscription_id: str, **params: Any) -> dict:
        return self._locked(self._cancel_subscription, subscription_id, params)

    def update_subscription(self, subscription_id: str, **fields: Any) -> dict:
        """Set raw fields (``status="past_due"``, ``current_period_end=...``) and
        emit ``customer.subscription.updated``."""
        def apply():
            sub = self._get("subscription", subscription_id)
            before = copy.deepcopy(sub)
            sub.update(fields)
            for item in sub["items"]["data"]:
                for k in ("current_period_start", "current_period_end"):
                    item[k] = sub[k]
            self._emit("customer.subscription.updated", sub, _diff(before, sub))
            return sub
        return self._locked(apply)

    def advance_subscription(self, subscription_id: str, paid: bool | None = True) -> dict:
        """The next billing cycle, now: the period rolls forward one interval
        (a trial ends; a pending cancel at period end cancels instead), a
        ``subscription_cycle`` invoice is created, finalized and charged
        (metered items bill the ended period's meter usage; pending
        prorations are added). ``paid=True`` pays it whatever the card,
        ``paid=False`` declines it (status ``past_due``), ``paid=None``
        charges the default payment method like Stripe would."""
        return self._locked(self._advance_subscription, subscription_id, paid)

    def create_payment_intent(self, **params: Any) -> dict:
        return self._locked(self._create_payment_intent, params)

    def refund(self, payment_intent: str, amount: int | None = None) -> dict:
        return self._locked(self._create_refund, {"payment_intent": payment_intent, "amount": amount})

    def attach_payment_method(self, customer: str, card: str = "pm_card_visa",
                              default: bool = False) -> dict:
        """Attach a test card (``pm_card_visa``, ``pm_card_chargeCustomerFail``…) to a
        customer, optionally as its ``invoice_settings.default_payment_method``."""
        def apply():
            pm = self._attach_payment_method(self._payment_method(card), customer)
            if default:
                cus = self._by_id[customer]
                before = copy.deepcopy(cus)
                cus["invoice_settings"]["default_payment_method"] = pm["id"]
                self._emit("customer.updated", cus, _diff(before, cus))
            return pm
        return self._locked(apply)

    def confirm_setup_intent(self, setup_intent: str, payment_method: str = "pm_card_visa") -> dict:
        """What Stripe.js does in the product's page: confirm with a card
        (a declining test card raises ``StripeError`` 402)."""
        return self._locked(lambda: self._confirm_setup_intent(self._get("setup_intent", setup_intent),
                                                               payment_method))

    def pay_invoice(self, invoice: str, paid_out_of_band: bool = False) -> dict:
        def apply():
            inv = self._get("invoice", invoice)
            if paid_out_of_band:
                self._mark_invoice_paid(inv, out_of_band=True)
            else:
                sub = self._objects["subscription"].get(inv["subscription"] or "")
                self._pay_invoice(inv, self._default_payment_method_of(sub) if sub else None)
            return inv
        return self._locked(apply)

    def create_dispute(self, charge: str, amount: int | None = None, reason: str = "fraudulent") -> dict:
        """Open a dispute on a charge (or a PaymentIntent's charge): ``charge.dispute.created``."""
        return self._locked(self._create_dispute, charge, amount, reason)

    def close_dispute(self, dispute: str, status: str = "lost") -> dict:
        """Close it ``won`` or ``lost``: ``charge.dispute.closed``."""
        return self._locked(self._close_dispute, dispute, status)

    # ---- inspection --------------------------------------------------------------

    def get(self, object_id: str) -> dict | None:
        """Current state of any stored object by id (deep copy)."""
        with self._lock:
            obj = self._by_id.get(object_id)
            return _public(copy.deepcopy(obj)) if obj is not None else None

    def objects(self, kind: str) -> list[dict]:
        """All objects of a type (``"customer"``, ``"checkout.session"``…), oldest first."""
        with self._lock:
            return [_public(copy.deepcopy(o)) for o in self._objects[kind].values()]

    customers = property(lambda self: self.objects("customer"))
    products = property(lambda self: self.objects("product"))
    prices = property(lambda self: self.objects("price"))
    checkout_sessions = property(lambda self: self.objects("checkout.session"))
    subscriptions = property(lambda self: self.objects("subscription"))
    invoices = property(lambda self: self.objects("invoice"))
    payment_intents = property(lambda self: self.objects("payment_intent"))
    refunds = property(lambda self: self.objects("refund"))
    meters = property(lambda self: self.objects("billing.meter"))
    payment_methods = property(lambda self: self.objects("payment_method"))
    setup_intents = property(lambda self: self.objects("setup_intent"))
    charges = property(lambda self: self.objects("charge"))
    disputes = property(lambda self: self.objects("dispute"))

    @property
    def events(self) -> list[dict]:
        """Every event the fake emitted, oldest first."""
        with self._lock:
            return copy.deepcopy(self._events)

    @property
    def meter_events(self) -> list[dict]:
        """Accepted meter events (duplicates excluded; cancelled ones flagged),
        as ``{event_name, identifier, customer, value, timestamp, payload,
        source, received_at, cancelled}``."""
        with self._lock:
            return [dict(e, payload=dict(e["payload"])) for e in self._meter_events]

    @property
    def meter_event_errors(self) -> list[dict]:
        """v2 stream events accepted by the API but rejected asynchronously."""
        with self._lock:
            return copy.deepcopy(self._meter_event_errors)

    @property
    def duplicate_meter_events(self) -> int:
        """How many meter events were ignored because their identifier was seen."""
        with self._lock:
            return self._duplicate_meter_events

    def meter_event_total(self, event_name: str, customer: str | None = None,
                          start: int | None = None, end: int | None = None) -> int | float:
        """Sum of values (negatives included, cancelled excluded), optionally in [start, end)."""
        with self._lock:
            return sum(e["value"] for e in self._meter_events
                       if e["event_name"] == event_name and not e["cancelled"]
                       and (customer is None or e["customer"] == customer)
                       and (start is None or e["timestamp"] >= start)
                       and (end is None or e["timestamp"] < end))

    def request_count(self, path: str | None = None, method: str | None = None) -> int:
        """Requests received whose path starts with ``path`` (all if None)."""
        with self._lock:
            return sum(n for key, n in list(self._request_counts.items())
                       if (method is None or key.startswith(method + " "))
                       and (path is None or key.split(" ", 1)[1].startswith(path)))

    @property
    def request_counts(self) -> dict[str, int]:
        """``{"POST /v1/customers": 3, ...}``."""
        with self._lock:
            return dict(self._request_counts)

    # ---- HTTP control surface (for out-of-process bench/demo use) -----------------

    def _control(self, method: str, path: str, query: str, raw: bytes) -> tuple[int, Any, dict]:
        """``/_fake/*``: unauthenticated JSON controls mirroring the Python API."""
        q = dict(parse_qsl(query))
        body = json.loads(raw or b"{}") if method == "POST" else {}
        action = path[len("/_fake/"):]
        if action == "stats" and method == "GET":
            with self._lock:
                totals: dict[str, Any] = collections.defaultdict(int)
                for e in self._meter_events:
                    if not e["cancelled"]:
                        totals[f"{e['event_name']}|{e['customer']}"] += e["value"]
                return 200, {"meter_events": len(self._meter_events),
                             "duplicate_meter_events": self._duplicate_meter_events,
                             "meter_event_errors": len(self._meter_event_errors),
                             "meter_totals": totals, "request_counts": self.request_counts,
                             "objects": {k: len(v) for k, v in self._objects.items()}}, {}
        if action == "meter_event_total" and method == "GET":
            return 200, {"total": self.meter_event_total(q.get("event_name", ""), q.get("customer"))}, {}
        if method == "POST" and action in ("reset", "fail_next", "fail_randomly", "hang_next",
                                           "expire_sessions", "clear_failures", "fail_next_payments"):
            getattr(self, action)(**body)
            return 200, {"ok": True}, {}
        if method == "POST" and action in ("create_customer", "create_product", "create_price",
                                           "create_meter", "create_subscription",
                                           "complete_checkout_session", "advance_subscription",
                                           "attach_payment_method", "confirm_setup_intent",
                                           "pay_invoice", "create_dispute", "close_dispute",
                                           "cancel_subscription", "refund"):
            try:
                return 200, getattr(self, action)(**body), {}
            except StripeError as e:
                return e.status, {"error": e.body}, {}
        return 404, {"error": {"message": f"unknown control {method} {path}"}}, {}


def _public(obj: Any) -> Any:
    """Strip internal ``_fields`` (e.g. stored line items) from an object."""
    if isinstance(obj, dict) and any(k.startswith("_") for k in obj):
        return {k: v for k, v in obj.items() if not k.startswith("_")}
    return obj


def _same(stored: Any, queried: str) -> bool:
    """Compare a stored field with a query-string filter value."""
    if isinstance(stored, bool):
        return stored == _bool(queried)
    return stored == queried


def _plan(price: dict) -> dict:
    """The legacy ``plan`` view of a recurring price, as Stripe still sends on items."""
    recurring = price["recurring"] or {}
    return {"id": price["id"], "object": "plan", "active": price["active"],
            "amount": price["unit_amount"], "amount_decimal": price["unit_amount_decimal"],
            "billing_scheme": price["billing_scheme"], "created": price["created"],
            "currency": price["currency"], "interval": recurring.get("interval"),
            "interval_count": recurring.get("interval_count"), "livemode": False,
            "metadata": dict(price["metadata"]), "meter": recurring.get("meter"),
            "nickname": price["nickname"], "product": price["product"], "tiers_mode": None,
            "transform_usage": None, "trial_period_days": None,
            "usage_type": recurring.get("usage_type", "licensed")}


def _money(amount: int, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency, "")
    value = f"{amount / 100:,.2f}"
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


def _diff(before: dict, after: dict) -> dict:
    """``previous_attributes`` for ``*.updated`` events."""
    return {k: v for k, v in before.items() if after.get(k) != v and not k.startswith("_")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake Stripe API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url", help="deliver emitted events here (signed)")
    parser.add_argument("--webhook-secret", default="whsec_test_fake")
    parser.add_argument("--strict-meters", action="store_true",
                        help="reject meter events whose event_name has no meter")
    args = parser.parse_args(argv)
    fake = FakeStripe(args.host, args.port, webhook_url=args.webhook_url,
                      webhook_secret=args.webhook_secret, strict_meters=args.strict_meters).start()
    print(f"Fake Stripe listening on {fake.api_base} "
          f"(STRIPE_API_BASE={fake.api_base} STRIPE_METER_EVENTS_API_BASE={fake.meter_events_api_base})",
          flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
