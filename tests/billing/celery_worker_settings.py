"""Settings of the real Celery worker that test_celery_worker.py starts: the
test settings with eager mode off (config/settings/test.py forces it on) and a
fast backoff, so retries after injected failures happen within the test."""

from config.settings.test import *  # noqa: F401,F403

CELERY_TASK_ALWAYS_EAGER = False
BILLING_DELIVERY_BACKOFF_BASE_SECONDS = 0.2
BILLING_DELIVERY_BACKOFF_MAX_SECONDS = 1.0
BILLING_DELIVERY_MAX_ATTEMPTS = 1000
STRIPE_MAX_NETWORK_RETRIES = 0
STRIPE_TIMEOUT_SECONDS = 2
