"""Real processes for the tests that need them: gunicorn servers and Celery
workers (subprocesses) against the test database, always stopped (TERM, then
KILL of their process group), and a small JSON HTTP client.

    with gunicorn_server(env={"REDIS_URL": url}) as server:   # server.base, server.log
        status, body = http_json("POST", server.base + "/api/v1/usage/track", {...}, key=raw_key)
    worker = CeleryWorker(settings_module="tests.billing.celery_worker_settings", env={...})
    worker.stop()

Used by tests/platform (Redis outage on a live server, the stateless check) and
tests/billing (deliveries by real workers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.db import connection

from tests.platform.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def live_database_url() -> str:
    """DATABASE_URL of the test database this process uses."""
    db = connection.settings_dict
    return (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


def _stop(process: subprocess.Popen, *, kill: bool = False) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    else:
        process.wait(timeout=5)


@dataclass
class Server:
    base: str
    log: Path


@contextmanager
def gunicorn_server(*, env: dict[str, str], drop: set[str] = frozenset(), workers: int = 1, threads: int = 2,
                    settings_module: str = "config.settings.local", startup_timeout: float = 60):
    """`gunicorn config.wsgi` on a free local port, DEBUG off, against the test
    database; `env` is added to this process's environment (minus `drop`).
    Yields a Server once /healthz answers."""
    full = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_TASK_ALWAYS_EAGER", *drop}}
    full.update({
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DEBUG": "False",
        "DATABASE_URL": live_database_url(),
        "LOG_LEVEL": "INFO",
    })  # fmt: skip
    full.update(env)
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="live-gunicorn-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
         "--threads", str(threads), "--log-level", "warning"],
        cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            assert process.poll() is None, Path(log.name).read_text()
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "the server did not start: " + Path(log.name).read_text()
            time.sleep(0.3)
        yield Server(base=base, log=Path(log.name))
    finally:
        _stop(process)
        log.close()


class CeleryWorker:
    """`celery -A config worker` against the test database (`settings_module`
    decides eager mode off, backoffs…); `env` is added to this process's
    environment. Stop it with `stop()` (or `kill()`: SIGKILL, no acks)."""

    def __init__(self, *, settings_module: str, env: dict[str, str], concurrency: int = 1, pool: str = "prefork",
                 queues: str | None = None):
        full = {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module, "DATABASE_URL": live_database_url(), **env}
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker", f"--pool={pool}", f"--concurrency={concurrency}",
            "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        if queues:
            command += ["-Q", queues]
        self._log = tempfile.NamedTemporaryFile(prefix="live-celery-", suffix=".log", delete=False)
        self.log = Path(self._log.name)
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=full, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self) -> None:
        _stop(self.process, kill=True)
        self._log.close()

    def stop(self) -> None:
        _stop(self.process)
        self._log.close()


def http_json(method: str, url: str, body: dict | None = None, *, key: str | None = None,
              timeout: float = 30) -> tuple[int, dict]:
    """One request with a JSON body (and the API key); (status, JSON answer)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
