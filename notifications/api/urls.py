"""Included at /api/v1/ by config/urls.py."""

from django.urls import path

from . import views

urlpatterns = [
    path("webhook-endpoints", views.EndpointListCreateApi.as_view(), name="webhook-endpoints"),
    path("webhook-endpoints/<str:endpointId>", views.EndpointDetailApi.as_view(), name="webhook-endpoints-detail"),
    path("events", views.EventListApi.as_view(), name="events-list"),
]
