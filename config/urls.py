from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config.api.envelope import api_handler400, api_handler403, api_handler404, api_handler500, is_api_request
from config.health import healthz

# Django tries the patterns in order: metering's (the feature checks and usage
# tracks, most of the API's traffic) come first, then the credit debits. No
# two apps' patterns match the same path, so the order decides nothing else.
api_v1 = [
    path("", include("metering.api.urls")),
    path("", include("credits.api.urls")),
    path("", include("companies.api.urls")),
    path("", include("notifications.api.urls")),
    path("", include("entitlements.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("insights.api.urls")),
    path("", include("desk.api.urls")),
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api-docs",
    ),
    path(
        "redoc/",
        SpectacularRedocView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api-redoc",
    ),
    # Anything else under /api/ answers with the JSON envelope, DEBUG or not.
    re_path(r"^.*$", csrf_exempt(api_handler404)),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("stripe/", include("billing.api.webhook_urls")),
    path("healthz", healthz, name="healthz"),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]


def _is_staff_admin_request(request) -> bool:
    user = getattr(request, "user", None)
    return request.path.startswith("/admin/") and bool(user and user.is_active and user.is_staff)


def admin_permission_denied(request, exception=None):
    """A page a staff member may not see answers inside the admin's layout,
    with the sidebar and a way back (SPEC §9), not a bare "403 Forbidden"."""
    from django.template.response import TemplateResponse
    from django.utils.http import url_has_allowed_host_and_scheme

    back = request.META.get("HTTP_REFERER", "")
    if not back or back == request.build_absolute_uri() or not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = "/admin/"
    message = str(exception) if exception and str(exception) else ""
    context = {
        **admin.site.each_context(request),
        "title": "You do not have access to this page",
        "back_url": back,
        "reason": message,
    }
    response = TemplateResponse(request, "admin/403.html", context, status=403)
    return response.render()


# Errors raised outside DRF views (a Host not in ALLOWED_HOSTS, a 403 from
# middleware, an unknown path, a crash) answer API callers with the envelope
# and browsers with Django's pages.


def handler400(request, exception=None):
    if is_api_request(request):
        return api_handler400(request, exception)
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def handler403(request, exception=None):
    if is_api_request(request):
        return api_handler403(request, exception)
    if _is_staff_admin_request(request):
        return admin_permission_denied(request, exception)
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)


def handler404(request, exception=None):
    if is_api_request(request):
        return api_handler404(request, exception)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if is_api_request(request):
        return api_handler500(request)
    from django.views.defaults import server_error

    return server_error(request)
