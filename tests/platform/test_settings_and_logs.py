"""SPEC §10: production refuses to start without a real SECRET_KEY; logs are
JSON lines carrying the request id and never an API key."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from companies.api_keys import generate_key
from config.logging import JsonFormatter, RequestIdFilter
from config.request_context import request_id_var

ROOT = Path(__file__).resolve().parents[2]


def _load_production_settings(secret_key: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    if secret_key is not None:
        env["SECRET_KEY"] = secret_key
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize("secret_key", [None, "", "short", "dev-insecure-secret-key-change-me"])
def test_production_refuses_to_start_without_a_real_secret_key(secret_key):
    result = _load_production_settings(secret_key)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_starts_with_a_real_secret_key():
    result = _load_production_settings("x" * 50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


def test_log_lines_are_json_with_the_request_id():
    record = logging.makeLogRecord({"name": "saasdesk.test", "levelname": "INFO", "msg": "hello %s", "args": ("world",)})
    token = request_id_var.set("req-123")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello world" and line["requestId"] == "req-123" and line["level"] == "INFO"


@pytest.mark.django_db
def test_api_keys_never_reach_the_logs(client, api, caplog):
    unknown_key = generate_key()
    with caplog.at_level(logging.DEBUG):
        client.get("/api/v1/tiers", HTTP_AUTHORIZATION=f"Bearer {unknown_key}")
        api.get("/api/v1/tiers")
        api.post("/api/v1/usage/track", {"companyId": "nope"}, format="json")
    logged = "\n".join(
        f"{r.getMessage()} {json.dumps(r.__dict__, default=str)}" for r in caplog.records
    )
    assert unknown_key not in logged and api.raw_key not in logged


def _deploy_check(**extra_env: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"}}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.production",
                "SECRET_KEY": "q7V-Lz0pX2mN9rT4wY6bC8dF1gH3jK5sA7eR9uI0oP2lM4nB6vC8xZ0", **extra_env})
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )
    return result.stdout + result.stderr


def test_production_passes_the_deploy_check_for_https():
    output = _deploy_check()
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning not in output, output


def test_production_https_settings_are_switchable_by_environment():
    output = _deploy_check(SECURE_SSL_REDIRECT="False", SECURE_HSTS_SECONDS="0")
    assert "security.W004" in output and "security.W008" in output


def test_production_trusts_the_proxy_header_only_when_told():
    code = "from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)"

    def header(value: str | None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "SECURE_PROXY_SSL_HEADER"}
        env.update({"DJANGO_SETTINGS_MODULE": "config.settings.production", "SECRET_KEY": "x" * 50})
        if value is not None:
            env["SECURE_PROXY_SSL_HEADER"] = value
        return subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60).stdout.strip()

    assert header(None) == "('HTTP_X_FORWARDED_PROTO', 'https')"
    assert header("X-Forwarded-Ssl-Proto") == "('HTTP_X_FORWARDED_SSL_PROTO', 'https')"
    assert header("") == "None"


@pytest.mark.parametrize("value", [None, ""])
def test_an_unset_or_empty_database_url_means_the_embedded_sqlite(value):
    """`DATABASE_URL=` (a shell habit, or an empty line in .env) is the default, not a crash."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    if value is not None:
        env["DATABASE_URL"] = value
    code = "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    result = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "django.db.backends.sqlite3", result.stderr[-2000:]
