from django.urls import path

from .views import (
    BillingStatusApi,
    CheckoutClaimApi,
    CustomerEnsureApi,
    OnboardApi,
    PaymentMethodDefaultApi,
    PaymentMethodDetachApi,
    PaymentMethodListApi,
    SetupIntentCreateApi,
    SubscriptionCancelApi,
    SubscriptionChangeApi,
    SubscriptionCollectionApi,
    SubscriptionDetailApi,
    SubscriptionLinkApi,
    SubscriptionResumeApi,
)

urlpatterns = [
    path("billing/claim-checkout", CheckoutClaimApi.as_view(), name="billing-claim-checkout"),
    path("billing/link-subscription", SubscriptionLinkApi.as_view(), name="billing-link-subscription"),
    path("billing/status/<str:companyId>", BillingStatusApi.as_view(), name="billing-status"),
    path("onboard", OnboardApi.as_view(), name="onboard"),
    path("billing/customers", CustomerEnsureApi.as_view(), name="billing-customers"),
    path("billing/setup-intents", SetupIntentCreateApi.as_view(), name="billing-setup-intents"),
    path("billing/payment-methods", PaymentMethodListApi.as_view(), name="billing-payment-methods"),
    path("billing/payment-methods/default", PaymentMethodDefaultApi.as_view(), name="billing-payment-methods-default"),
    path("billing/payment-methods/<str:paymentMethodId>", PaymentMethodDetachApi.as_view(), name="billing-payment-method"),
    path("billing/subscriptions", SubscriptionCollectionApi.as_view(), name="billing-subscriptions"),
    path("billing/subscriptions/<uuid:subscriptionId>", SubscriptionDetailApi.as_view(), name="billing-subscription"),
    path("billing/subscriptions/<uuid:subscriptionId>/change", SubscriptionChangeApi.as_view(), name="billing-subscription-change"),
    path("billing/subscriptions/<uuid:subscriptionId>/cancel", SubscriptionCancelApi.as_view(), name="billing-subscription-cancel"),
    path("billing/subscriptions/<uuid:subscriptionId>/resume", SubscriptionResumeApi.as_view(), name="billing-subscription-resume"),
]
