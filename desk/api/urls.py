"""Included at /api/v1/ by config/urls.py."""

from django.urls import path

from . import views

urlpatterns = [
    path("companies/<str:companyId>/merge", views.CompanyMergeApi.as_view(), name="companies-merge"),
]
