from django.urls import path

from . import views

urlpatterns = [
    path("usage/stats", views.UsageStatsApi.as_view(), name="usage-stats"),
    path("companies/<str:companyId>/health", views.CompanyHealthApi.as_view(), name="companies-health"),
    path("insights/revenue", views.RevenueApi.as_view(), name="insights-revenue"),
    path("segments", views.SegmentListApi.as_view(), name="segments-list"),
    path("segments/<str:slug>/companies", views.SegmentCompaniesApi.as_view(), name="segments-companies"),
]
