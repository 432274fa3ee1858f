"""URL conf of the check benchmark's server (bench/check_settings.py): the
real URLs plus the floor views. Production never routes these."""

from django.urls import path

from config.urls import handler404, handler500, urlpatterns as base_urlpatterns  # noqa: F401

from .bench_views import AuthenticatedFloorApi, FloorApi

urlpatterns = [
    path("bench/floor/<uuid:company_id>", FloorApi.as_view()),
    path("bench/floor-auth/<uuid:company_id>", AuthenticatedFloorApi.as_view()),
    *base_urlpatterns,
]
