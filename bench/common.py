"""Helpers shared by the benchmarks in bench/: the PostgreSQL bench database,
in-process Django for seeding, a gunicorn server on a free local port, and a
wrk load run parsed into req/s, p50 and p99. Everything is bounded in time
and every process started here is stopped here.

    from bench.common import BenchConfig, django_setup, ensure_database, gunicorn, run_wrk, print_table

Environment:
    BENCH_DATABASE_URL   default postgres://postgres@127.0.0.1:5432/saasdesk_bench
    BENCH_REDIS_URL      default redis://127.0.0.1:6379/9 (cache of the server; "" = local memory)
    BENCH_DURATION       seconds per measurement (default 10)
    BENCH_CONNECTIONS    concurrent connections (default 16)
    BENCH_WORKERS        gunicorn workers (default 4)
    BENCH_WORKER_CLASS   gunicorn worker class (default sync, as issue 9 measures)
    BENCH_THREADS        threads per worker for the gthread class (default 1; sync ignores it)"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/saasdesk_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
BENCH_SECRET_KEY = "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class BenchConfig:
    database_url: str = field(default_factory=lambda: os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    redis_url: str = field(default_factory=lambda: os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    duration: int = field(default_factory=lambda: int(os.environ.get("BENCH_DURATION", "10")))
    connections: int = field(default_factory=lambda: int(os.environ.get("BENCH_CONNECTIONS", "16")))
    workers: int = field(default_factory=lambda: int(os.environ.get("BENCH_WORKERS", "4")))
    worker_class: str = field(default_factory=lambda: os.environ.get("BENCH_WORKER_CLASS", "sync"))
    threads: int = field(default_factory=lambda: int(os.environ.get("BENCH_THREADS", "1")))

    def describe_server(self) -> str:
        if self.worker_class == "gthread":
            return f"gunicorn {self.workers} gthread workers × {self.threads} threads"
        return f"gunicorn {self.workers} {self.worker_class} workers"

    def server_env(self, *, settings_module: str = "config.settings.production", **extra: str) -> dict[str, str]:
        """Environment of a production-like server: DEBUG off, a bench
        SECRET_KEY, the bench database, Redis as cache when reachable."""
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module,
            "SECRET_KEY": BENCH_SECRET_KEY,
            "DEBUG": "false",
            "DATABASE_URL": self.database_url,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "API_RATE_LIMIT": "1000000000/minute",
            "LOG_LEVEL": "WARNING",
            "CACHE_KEY_PREFIX": "bench",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("REDIS_URL", None)
        if self.redis_url and redis_reachable(self.redis_url):
            env["REDIS_URL"] = self.redis_url
        env.update(extra)
        return env


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def redis_reachable(url: str) -> bool:
    match = re.match(r"redis://(?:[^@/]*@)?([^:/]+)(?::(\d+))?", url)
    if not match:
        return False
    try:
        with socket.create_connection((match.group(1), int(match.group(2) or 6379)), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --- database and Django -----------------------------------------------------------------


def ensure_database(database_url: str) -> None:
    """Create the bench database if it does not exist (never drops it: other
    benchmarks share it and keep their own products apart)."""
    import psycopg

    base, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def django_setup(config: BenchConfig, *, settings_module: str = "config.settings.production") -> None:
    """Django in this process (for seeding) against the bench database, then
    migrate it."""
    os.environ.update(config.server_env(settings_module=settings_module))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


# --- gunicorn ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(config: BenchConfig, *, env: dict[str, str] | None = None, startup_timeout: float = 120):
    """Run `gunicorn config.wsgi` on 127.0.0.1:<free port>; yields the base
    URL once /healthz answers; always stopped (TERM, then KILL) on exit."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "config.wsgi",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(config.workers),
        # gunicorn turns sync workers into gthread ones when threads > 1.
        "--threads", str(config.threads if config.worker_class == "gthread" else 1),
        "--worker-class", config.worker_class,
        "--keep-alive", "30",
        "--backlog", "2048",
        "--log-level", "warning",
        "--timeout", "60",
    ]  # fmt: skip
    log_file = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)
    process = subprocess.Popen(
        command, cwd=ROOT, env=env or config.server_env(), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}; see {log_file.name}")
            try:
                with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer /healthz within {startup_timeout}s; see {log_file.name}")
            time.sleep(0.2)
        log(f"gunicorn up at {base_url} ({config.describe_server()}), log {log_file.name}")
        yield base_url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        log_file.close()


# --- load generation ---------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary; installs Debian's package when missing and we are root."""
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk missing: apt-get install wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env, timeout=300)
        path = shutil.which("wrk")
    if not path:
        raise SystemExit("bench needs wrk (Debian: apt-get install wrk)")
    return path


@dataclass(frozen=True)
class LoadResult:
    name: str
    requests_per_sec: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non_2xx: int


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def lua_script(*, paths: list[str], method: str = "GET", headers: dict[str, str] | None = None,
               bodies: list[str] | None = None) -> str:
    """A wrk script that sends `method` to a random one of `paths` (with a
    random one of `bodies`), and reports percentiles on a parsable line."""
    header_lines = "\n".join(f"headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or {}).items())
    path_list = ", ".join(_lua_string(p) for p in paths)
    body_list = ", ".join(_lua_string(b) for b in bodies or [])
    return f"""
math.randomseed(os.time())
local paths = {{{path_list}}}
local bodies = {{{body_list}}}
local headers = {{}}
{header_lines}
request = function()
  local body = nil
  if #bodies > 0 then body = bodies[math.random(#bodies)] end
  return wrk.format({_lua_string(method)}, paths[math.random(#paths)], headers, body)
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH_RESULT requests=%d p50_us=%d p99_us=%d errors=%d status=%d\\n",
    summary.requests, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def run_wrk(name: str, base_url: str, script: str, config: BenchConfig, *, duration: int | None = None,
            warmup: int = 2) -> LoadResult:
    """Warm up, then measure `config.connections` connections for `duration` s."""
    wrk = ensure_wrk()
    duration = duration or config.duration
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        script_path = handle.name
    threads = max(1, min(4, config.connections // 4, os.cpu_count() or 1))
    base = [wrk, "-t", str(threads), "-c", str(config.connections), "-s", script_path, "--latency", "--timeout", "5s"]
    try:
        if warmup:
            subprocess.run([*base, "-d", f"{warmup}s", base_url], capture_output=True, text=True, timeout=warmup + 30)
        done = subprocess.run([*base, "-d", f"{duration}s", base_url], capture_output=True, text=True, timeout=duration + 60)
    finally:
        os.unlink(script_path)
    output = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    result = re.search(r"BENCH_RESULT requests=(\d+) p50_us=(\d+) p99_us=(\d+) errors=(\d+) status=(\d+)", output)
    if not rps or not result:
        raise RuntimeError(f"could not parse wrk output for {name}:\n{output}\n{done.stderr}")
    return LoadResult(
        name=name,
        requests_per_sec=float(rps.group(1)),
        p50_ms=int(result.group(2)) / 1000,
        p99_ms=int(result.group(3)) / 1000,
        requests=int(result.group(1)),
        errors=int(result.group(4)),
        non_2xx=int(result.group(5)),
    )


def print_table(results: list[LoadResult], *, floor: LoadResult, goals: dict[str, str] | None = None) -> None:
    """One line per measurement with its share of the floor's throughput."""
    goals = goals or {}
    header = f"{'endpoint':<44} {'req/s':>9} {'% floor':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  goal"
    print(header)
    print("-" * len(header))
    for result in [floor, *[r for r in results if r is not floor]]:
        share = 100 * result.requests_per_sec / floor.requests_per_sec if floor.requests_per_sec else 0
        print(
            f"{result.name:<44} {result.requests_per_sec:>9.0f} {share:>7.0f}% {result.p50_ms:>8.2f} "
            f"{result.p99_ms:>8.2f} {result.errors + result.non_2xx:>7}  {goals.get(result.name, '')}"
        )


# Lua pieces for scripts that need unique keys per request (idempotency keys,
# job ids) and the parsable result line; plain strings (no %-formatting).
UNIQUE_KEYS_LUA = r"""
local counter = 0
local prefix = nil
-- Unique across wrk runs (warm-up, measurement) and threads: a random prefix
-- per thread from /dev/urandom, then a counter.
function init(args)
  local f = io.open("/dev/urandom", "rb")
  local bytes = f:read(8)
  f:close()
  prefix = string.gsub(bytes, ".", function(c) return string.format("%02x", string.byte(c)) end)
end
local function next_key()
  counter = counter + 1
  return prefix .. "-" .. counter
end
"""

REPORT_LUA = r"""
done = function(summary, latency, requests)
  io.write(string.format("BENCH_RESULT requests=%d p50_us=%d p99_us=%d errors=%d status=%d\n",
    summary.requests, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def median_result(name: str, rounds: list[LoadResult]) -> LoadResult:
    """One row from interleaved rounds of the same load: the median of each
    figure (req/s, p50, p99), the sums of the counts."""
    return LoadResult(
        name=name,
        requests_per_sec=statistics.median([r.requests_per_sec for r in rounds]),
        p50_ms=statistics.median([r.p50_ms for r in rounds]),
        p99_ms=statistics.median([r.p99_ms for r in rounds]),
        requests=sum(r.requests for r in rounds),
        errors=sum(r.errors for r in rounds),
        non_2xx=sum(r.non_2xx for r in rounds),
    )


def interleaved(runs: list[tuple[str, Callable[[], LoadResult]]], rounds: int) -> dict[str, LoadResult]:
    """Each (name, run) once per round, round after round, so that a slow
    spell of a shared host spreads over all of them instead of skewing one;
    the median row of each."""
    measured: dict[str, list[LoadResult]] = {name: [] for name, _ in runs}
    for round_number in range(1, rounds + 1):
        for name, run in runs:
            log(f"round {round_number}/{rounds}: {name}")
            measured[name].append(run())
    return {name: median_result(name, results) for name, results in measured.items()}
