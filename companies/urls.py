"""Non-API pages: the root redirects to the admin, /healthz for load balancers."""

from django.db import connection
from django.http import JsonResponse
from django.urls import path
from django.views.generic import RedirectView


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("healthz", healthz, name="healthz"),
]
