from django.urls import path

from . import views

urlpatterns = [
    path("usage/stats", views.UsageStatsApi.as_view(), name="usage-stats"),
    path("insights/revenue", views.RevenueApi.as_view(), name="insights-revenue"),
]
