from django.urls import path

from . import views

urlpatterns = [
    path("usage/track", views.UsageTrackApi.as_view(), name="usage-track"),
    path("usage/track-batch", views.UsageTrackBatchApi.as_view(), name="usage-track-batch"),
    path("usage/set", views.UsageSetApi.as_view(), name="usage-set"),
    path("usage/adjust", views.UsageAdjustApi.as_view(), name="usage-adjust"),
    path("usage/history", views.UsageHistoryApi.as_view(), name="usage-history"),
    path("usage/snapshots", views.UsageSnapshotsApi.as_view(), name="usage-snapshots"),
]
