"""Included at /api/v1/ by config/urls.py. No trailing slashes (SPEC §3).
The fixed paths come before `companies/<companyId>` so that they win."""

from django.urls import path

from . import views

urlpatterns = [
    path("companies", views.CompanyListCreateApi.as_view(), name="companies"),
    path("companies/by-product-link", views.CompanyByProductLinkApi.as_view(), name="companies-by-product-link"),
    path("companies/smart-link", views.CompanySmartLinkApi.as_view(), name="companies-smart-link"),
    path("companies/<str:companyId>", views.CompanyDetailApi.as_view(), name="companies-detail"),
    path("companies/<str:companyId>/contacts", views.CompanyContactsApi.as_view(), name="companies-contacts"),
    path("contacts", views.ContactUpsertApi.as_view(), name="contacts-upsert"),
    path("contacts/bulk-upsert", views.ContactsBulkUpsertApi.as_view(), name="contacts-bulk-upsert"),
    path("links", views.LinkCreateApi.as_view(), name="links-create"),
    path("links/reset", views.LinksResetApi.as_view(), name="links-reset"),
]
