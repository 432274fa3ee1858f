from django.urls import path

from .views import BillingStatusApi, CheckoutClaimApi, OnboardApi, SubscriptionLinkApi

urlpatterns = [
    path("billing/claim-checkout", CheckoutClaimApi.as_view(), name="billing-claim-checkout"),
    path("billing/link-subscription", SubscriptionLinkApi.as_view(), name="billing-link-subscription"),
    path("billing/status/<str:companyId>", BillingStatusApi.as_view(), name="billing-status"),
    path("onboard", OnboardApi.as_view(), name="onboard"),
]
