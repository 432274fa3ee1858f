from django.urls import path

from . import checks, views

urlpatterns = [
    path("companies/<uuid:companyId>/features", checks.CompanyFeatureListApi.as_view(), name="company-features"),
    path(
        "companies/<uuid:companyId>/features/<str:featureCode>",
        checks.CompanyFeatureApi.as_view(),
        name="company-feature",
    ),
    path(
        "companies/<uuid:companyId>/features/<str:featureCode>/override",
        checks.CompanyFeatureOverrideApi.as_view(),
        name="company-feature-override",
    ),
    path(
        "companies/<uuid:companyId>/features/<str:featureCode>/explain",
        checks.CompanyFeatureExplainApi.as_view(),
        name="company-feature-explain",
    ),
    path("orgs/<str:externalOrgId>/features", checks.OrgFeatureListApi.as_view(), name="org-features"),
    path(
        "orgs/<str:externalOrgId>/features/<str:featureCode>/override",
        checks.OrgFeatureOverrideApi.as_view(),
        name="org-feature-override",
    ),
    path(
        "orgs/<str:externalOrgId>/features/<str:featureCode>/explain",
        checks.OrgFeatureExplainApi.as_view(),
        name="org-feature-explain",
    ),
    path("orgs/<str:externalOrgId>/features/<str:featureCode>", checks.OrgFeatureApi.as_view(), name="org-feature"),
    path("usage/track", views.UsageTrackApi.as_view(), name="usage-track"),
    path("usage/track-batch", views.UsageTrackBatchApi.as_view(), name="usage-track-batch"),
    path("usage/set", views.UsageSetApi.as_view(), name="usage-set"),
    path("usage/adjust", views.UsageAdjustApi.as_view(), name="usage-adjust"),
    path("usage/history", views.UsageHistoryApi.as_view(), name="usage-history"),
    path("usage/snapshots", views.UsageSnapshotsApi.as_view(), name="usage-snapshots"),
]
