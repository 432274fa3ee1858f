# Importing the Celery app here makes `celery -A config worker` and
# @shared_task use it.
from .celery_app import app as celery_app

__all__ = ("celery_app",)
