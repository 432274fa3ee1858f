from django.urls import path

from . import views

urlpatterns = [
    path("usage/stats", views.UsageStatsApi.as_view(), name="usage-stats"),
]
