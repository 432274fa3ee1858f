"""The floor of bench/check.py: the cheapest DRF GET that still does real
work (one indexed query), served by the same gunicorn in the same run. Only
routed by entitlements.bench_urls, which only bench settings use."""

from rest_framework.response import Response
from rest_framework.views import APIView

from companies.models import Company


class FloorApi(APIView):
    """No authentication, no throttle: one primary-key lookup and a JSON body."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def get(self, request, company_id):
        row = Company.objects.filter(pk=company_id).values("id", "name").first()
        return Response({"companyId": str(row["id"]), "name": row["name"]} if row else {})


class AuthenticatedFloorApi(APIView):
    """The floor plus what every product API call pays: API key
    authentication and the rate limit (both served from the cache)."""

    def get(self, request, company_id):
        row = Company.objects.filter(pk=company_id).values("id", "name").first()
        return Response({"companyId": str(row["id"]), "name": row["name"]} if row else {})
