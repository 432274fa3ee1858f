"""A real local HTTP receiver for webhook tests and the benchmark: a
threaded http.server on 127.0.0.1 and a random port that records every
request and answers from a script (e.g. fail twice with 500, then 200)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes


class Receiver:
    def __init__(self, port: int = 0):
        self.requests: list[Received] = []
        self.script: deque = deque()  # statuses (or "sleep:<seconds>") answered first, in order
        self.default_status = 200
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                    answer = receiver.script.popleft() if receiver.script else receiver.default_status
                if isinstance(answer, str) and answer.startswith("sleep:"):
                    time.sleep(float(answer.split(":", 1)[1]))
                    answer = 200
                if isinstance(answer, str) and answer.startswith("drip:"):
                    # Headers a byte at a time, each just inside the socket timeout.
                    pause = float(answer.split(":", 1)[1])
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(pause)
                    return
                payload = b'{"ok": true}' if answer < 300 else b"receiver says no " * 200
                self.send_response(answer)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    """`python -m tests.notifications.receiver --port 9000 --secret whsec_…`:
    prints every event received, with whether its signature verifies."""
    import argparse
    import json

    from notifications.signing import signature_verify

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", default="")
    parser.add_argument("--quiet", action="store_true", help="Only count (for bench/notifications.py).")
    args = parser.parse_args()
    receiver = Receiver(port=args.port)
    with receiver:
        print(f"listening on http://127.0.0.1:{args.port}/hooks", flush=True)
        seen = 0
        while True:
            time.sleep(0.2)
            with receiver.lock:
                new, seen = receiver.requests[seen:], len(receiver.requests)
                if args.quiet:
                    receiver.requests.clear()
                    seen = 0
            for request in [] if args.quiet else new:
                signed = args.secret and signature_verify(
                    secret=args.secret, header=request.headers.get("SaaSDesk-Signature", ""), body=request.body
                )
                event = json.loads(request.body or b"{}")
                print(f"{event.get('createdAt')} {event.get('type')} signature={'ok' if signed else 'unchecked/bad'}")
                print("  " + json.dumps(event.get("data"), sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
