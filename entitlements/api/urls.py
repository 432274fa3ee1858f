from django.urls import path

from . import views

urlpatterns = [
    path("companies/<uuid:companyId>/features", views.CompanyFeatureListApi.as_view(), name="company-features"),
    path(
        "companies/<uuid:companyId>/features/<str:featureCode>",
        views.CompanyFeatureApi.as_view(),
        name="company-feature",
    ),
    path("orgs/<str:externalOrgId>/features", views.OrgFeatureListApi.as_view(), name="org-features"),
    path("orgs/<str:externalOrgId>/features/<str:featureCode>", views.OrgFeatureApi.as_view(), name="org-feature"),
    path("tiers", views.TierListApi.as_view(), name="tiers"),
    path("tiers/<str:code>", views.TierDetailApi.as_view(), name="tier"),
    path("tiers/<str:code>/apply", views.TierApplyApi.as_view(), name="tier-apply"),
    path("subscriptions", views.SubscriptionCreateApi.as_view(), name="subscriptions"),
]
