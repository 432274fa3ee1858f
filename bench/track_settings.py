"""Settings of bench/track.py's gunicorn: the local settings with the floor
view's URL conf (metering.bench_urls) and DEBUG off."""

from config.settings.local import *  # noqa: F401,F403

DEBUG = False
ROOT_URLCONF = "metering.bench_urls"
