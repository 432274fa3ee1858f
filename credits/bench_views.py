"""The floor of bench/credits.py: the least a debit endpoint can do under the
same stack (gunicorn, Django, DRF parsing and rendering, PostgreSQL) — one
conditional UPDATE … RETURNING on a balance row and one INSERT of an entry,
in a transaction, with no auth, no validation beyond int(), no idempotency,
no lots. Its two tables are made by the benchmark (`FLOOR_TABLES_SQL`), not
by a migration. Served only by credits.bench_urls, never by config.urls."""

from __future__ import annotations

import uuid

from django.db import connection, transaction
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.views import APIView

FLOOR_TABLES_SQL = """
CREATE TABLE IF NOT EXISTS bench_credit_balance (id integer PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE IF NOT EXISTS bench_credit_entry (
    id uuid PRIMARY KEY, balance_id integer NOT NULL, amount bigint NOT NULL, balance_after bigint NOT NULL,
    job_id varchar(255) NOT NULL, allocations jsonb NOT NULL, created_at timestamptz NOT NULL);
"""
_UPDATE = "UPDATE bench_credit_balance SET balance = balance - %s WHERE id = %s AND balance >= %s RETURNING balance"
_INSERT = (
    "INSERT INTO bench_credit_entry (id, balance_id, amount, balance_after, job_id, allocations, created_at) "
    "VALUES (%s, %s, %s, %s, %s, '[]', %s)"
)


class FloorDebitApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def post(self, request):
        data = request.data
        amount = int(data.get("amount", 1))
        balance_id = int(data["balanceId"])
        entry_id = uuid.uuid4()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_UPDATE, [amount, balance_id, amount])
            row = cursor.fetchone()
            if row is None:
                return Response({"error": "not enough credits"}, status=402)
            cursor.execute(_INSERT, [entry_id, balance_id, -amount, row[0], str(data.get("jobId", "")), timezone.now()])
        return Response({"ledgerEntryId": str(entry_id), "totalBalanceAfter": row[0]})


class FloorDebitWithAuthApi(FloorDebitApi):
    """The same floor behind the API's key authentication, permission and
    rate limit — what every product call pays before any credits logic."""

    authentication_classes = APIView.authentication_classes
    permission_classes = APIView.permission_classes
    throttle_classes = APIView.throttle_classes
