"""Settings of the real Celery worker that test_celery_worker.py starts: the
test settings with eager mode off (config/settings/test.py forces it on)."""

from config.settings.test import *  # noqa: F401,F403

CELERY_TASK_ALWAYS_EAGER = False
