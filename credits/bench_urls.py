"""URL conf of the credits benchmark only (bench/credits_settings.py): the
real URLs plus the floor view."""

from django.urls import path

from config.urls import urlpatterns as real_urlpatterns

from .bench_views import FloorDebitApi, FloorDebitWithAuthApi

urlpatterns = [
    path("bench/floor/debit", FloorDebitApi.as_view(), name="bench-floor-debit"),
    path("bench/floor/debit-auth", FloorDebitWithAuthApi.as_view(), name="bench-floor-debit-auth"),
    *real_urlpatterns,
]
