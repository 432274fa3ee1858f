"""Test settings: the same stack as production, made fast and deterministic."""

from .base import *  # noqa: F401,F403
from .base import CACHES, DATABASES, env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Keep each test's cache apart from a developer's running instance.
if "KEY_PREFIX" in CACHES["default"]:
    CACHES["default"]["KEY_PREFIX"] = env("CACHE_KEY_PREFIX", default="saasdesk-test")
API_RATE_LIMIT = env("API_RATE_LIMIT", default="600000/minute")
LOGGING_CONFIG = None  # quiet test output; pytest captures warnings itself

# Tasks run inline in tests; the tests that are about Celery start a real
# worker against the real broker themselves.
CELERY_TASK_ALWAYS_EAGER = True

# A second database alias, so the replica router is tested (SPEC §10): it
# mirrors the test database; the router uses it only where a test switches
# READ_REPLICA_ENABLED on (and declares both databases).
if "replica" not in DATABASES:
    DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}
