"""URL conf of the track benchmark only (bench/track_settings.py): the real
URLs plus the floor view."""

from django.urls import path

from config.urls import urlpatterns as real_urlpatterns

from .bench_views import FloorTrackApi, FloorTrackWithAuthApi

urlpatterns = [
    path("bench/floor/track", FloorTrackApi.as_view(), name="bench-floor-track"),
    path("bench/floor/track-auth", FloorTrackWithAuthApi.as_view(), name="bench-floor-track-auth"),
    *real_urlpatterns,
]
