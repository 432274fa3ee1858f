from django.urls import path

from . import views

urlpatterns = [
    path("tiers", views.TierListApi.as_view(), name="tiers"),
    path("tiers/<str:code>", views.TierDetailApi.as_view(), name="tier"),
    path("tiers/<str:code>/apply", views.TierApplyApi.as_view(), name="tier-apply"),
    path("subscriptions", views.SubscriptionCreateApi.as_view(), name="subscriptions"),
]
