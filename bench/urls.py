"""URL conf of the benchmarks' servers (bench/*_settings.py): the real URLs
plus the floor views of bench/floors.py. Production never routes these."""

from django.urls import path

from config.urls import handler404, handler500, urlpatterns as real_urlpatterns  # noqa: F401

from .floors import AuthenticatedFloorApi, FloorApi, FloorTrackApi, FloorTrackBatchApi, FloorTrackWithAuthApi, RawUsageStatsApi

urlpatterns = [
    path("bench/floor/<uuid:company_id>", FloorApi.as_view()),
    path("bench/floor-auth/<uuid:company_id>", AuthenticatedFloorApi.as_view()),
    path("bench/floor/track", FloorTrackApi.as_view(), name="bench-floor-track"),
    path("bench/floor/track-auth", FloorTrackWithAuthApi.as_view(), name="bench-floor-track-auth"),
    path("bench/floor/track-batch", FloorTrackBatchApi.as_view(), name="bench-floor-track-batch"),
    path("bench/raw/usage/stats", RawUsageStatsApi.as_view(), name="bench-raw-usage-stats"),
    *real_urlpatterns,
]
