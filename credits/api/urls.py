from django.urls import path

from . import views

urlpatterns = [
    path("credits/debit", views.CreditsDebitApi.as_view(), name="credits-debit"),
    path("credits/refund", views.CreditsRefundApi.as_view(), name="credits-refund"),
    path("credits/grants", views.CreditsGrantApi.as_view(), name="credits-grants"),
    path("credits/ledger", views.CreditsLedgerApi.as_view(), name="credits-ledger"),
    path("credits/reservations", views.ReservationCreateApi.as_view(), name="credits-reservations"),
    path("credits/reservations/<str:reservationId>", views.ReservationDetailApi.as_view(), name="credits-reservation"),
    path(
        "credits/reservations/<str:reservationId>/usage",
        views.ReservationUsageApi.as_view(),
        name="credits-reservation-usage",
    ),
    path(
        "credits/reservations/<str:reservationId>/settle",
        views.ReservationSettleApi.as_view(),
        name="credits-reservation-settle",
    ),
    path(
        "credits/reservations/<str:reservationId>/release",
        views.ReservationReleaseApi.as_view(),
        name="credits-reservation-release",
    ),
    path("companies/<str:companyId>/credits", views.CompanyCreditsApi.as_view(), name="company-credits"),
    path("companies/<str:companyId>/credits/auto-refill", views.AutoRefillApi.as_view(), name="company-credits-auto-refill"),
    path("orgs/<str:externalOrgId>/credits", views.OrgCreditsApi.as_view(), name="org-credits"),
]
