"""`manage.py run_job NAME`: run one scheduled job once, in the foreground
(SPEC §10), for operators, scripts and tests. `--list` names them. The jobs
are the RUN_JOBS setting, next to the beat schedule."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string


class Command(BaseCommand):
    help = "Run one scheduled job once in the foreground (see --list)."

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="Job name, e.g. deliver_notifications")
        parser.add_argument("--list", action="store_true", help="List the job names and exit.")

    def handle(self, *args, name=None, list=False, **options):
        jobs: dict[str, str] = getattr(settings, "RUN_JOBS", {})
        if list:
            for job_name in sorted(jobs):
                self.stdout.write(job_name)
            return
        if not name:
            raise CommandError("Name a job (run_job --list names them).")
        if name not in jobs:
            raise CommandError(f"Unknown job {name!r}; known: {', '.join(sorted(jobs))}.")
        task = import_string(jobs[name])
        # Calling a Celery task object runs its body here, synchronously.
        result = task()
        if result is not None:
            self.stdout.write(json.dumps(result, default=str))
