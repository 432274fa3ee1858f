"""Debits and refunds (SPEC §7).

A debit is one short transaction that locks the wallet row: the lock is what
makes "N debits of 1 on a balance of K admit exactly K" hold (each debit
re-reads the balance the previous one committed) and what keeps the lots,
the wallet balances and the ledger summing to the same number. Idempotency
is the unique (product, idempotency key) index (SPEC §2: keys are scoped
to the product, so one key names one debit of one company): a concurrent identical debit
waits for the lock, then either fails its insert or is refused for want of
credits; either way it answers with the stored entry of the winner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from uuid import UUID

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from companies.models import ProductLink
from companies.selectors import account_suspended_sql
from config.db import ensure_prepared, execute_form, prepared_form
from config.errors import ApplicationError, BadRequest, Conflict, NotFound

from ..models import BUCKET_SPEND_RANK, CreditLot, EntryKind, LedgerEntry, Wallet
from ..rules import (
    USAGE_SOURCE_PREFIX,
    check_positive,
    company_suspended_check,
    default_debit_key,
    default_refund_key,
    fingerprint,
    idempotency_conflict,
    no_wallet,
    not_enough_credits,
    wallet_frozen,
)
from ..selectors import wallet_get
from .ledger import (
    credit_lot_deltas,
    entry_apply,
    entry_time_sql,
    spendable_lots,
    take_from_lots,
    take_from_lots_sql,
    wallet_lock,
    wallet_lock_visible,
)


@dataclass(frozen=True)
class DebitResult:
    entry: LedgerEntry
    replayed: bool = False


def credits_debit(
    *,
    product_id: UUID,
    amount: int,
    job_id: str,
    source_service: str,
    company_id: UUID | None = None,
    external_org_id: str | None = None,
    idempotency_key: str | None = None,
    actor: str = "",
    actor_user_id: str = "",
    metadata: dict | None = None,
    recorded_at: datetime | None = None,
) -> DebitResult:
    """Take `amount` credits for a job: one `usage` entry. A repeat of the
    idempotency key (default sha256(jobId + sourceService)) returns the first
    entry (`replayed`), or 409 with another amount; 402 without enough
    available credits or while the wallet owes debt; 423 frozen; 404 no wallet."""
    check_positive(amount, field="amount")
    if source_service.startswith(USAGE_SOURCE_PREFIX):
        raise BadRequest.for_field("sourceService", f"The '{USAGE_SOURCE_PREFIX}' prefix is reserved for usage tracking.")
    key = idempotency_key or default_debit_key(job_id=job_id, source_service=source_service)
    request_fingerprint = fingerprint(amount=amount, job_id=job_id, source_service=source_service)
    actor = actor_user_id and f"{actor} user:{actor_user_id}" or actor
    if connection.vendor == "postgresql" and recorded_at is None:
        entry = debit_in_one_round_trip(
            product_id=product_id, company_id=company_id, external_org_id=external_org_id, amount=amount,
            job_id=job_id, source_service=source_service, idempotency_key=key,
            request_fingerprint=request_fingerprint, actor=actor, metadata=metadata or {},
        )
        if entry is not None:
            return DebitResult(entry=entry)
    # Everything the one-round-trip debit leaves alone — every refusal, a
    # replay, expired lots to sweep, a threshold to cross, SQLite — takes the
    # transaction below, which decides and answers it.
    wallet_id = None
    try:
        with transaction.atomic():
            wallet = wallet_lock_visible(product_id=product_id, company_id=company_id, external_org_id=external_org_id)
            if wallet is None:
                # The right 404: an unknown/invisible company, or no wallet.
                wallet_get(product_id=product_id, company_id=company_id, external_org_id=external_org_id)
                raise no_wallet()
            wallet_id = wallet.pk
            entry = debit_locked(
                wallet=wallet,
                amount=amount,
                job_id=job_id,
                source_service=source_service,
                idempotency_key=key,
                request_fingerprint=request_fingerprint,
                actor=actor,
                metadata=metadata or {},
                recorded_at=recorded_at,
            )
        return DebitResult(entry=entry)
    except (ApplicationError, IntegrityError):
        # A retry of a debit that once succeeded answers with that success,
        # even if the wallet could not pay it again now.
        stored = LedgerEntry.objects.filter(product_id=product_id, idempotency_key=key).first() if wallet_id else None
        if stored is None:
            raise
        if stored.request_fingerprint != request_fingerprint or stored.wallet_id != wallet_id:
            raise idempotency_conflict(
                stored, "This jobId and sourceService (or idempotency key) were already debited with another amount."
            ) from None
        return DebitResult(entry=stored, replayed=True)


# --- The debit in one round trip (PostgreSQL) ------------------------------------------
#
# Two statements sent in one message: PostgreSQL runs them as one implicit
# transaction (or as part of the caller's), each with its own snapshot.
# 1. `SELECT … FOR UPDATE` locks the wallet row — the same lock, protecting
#    the same invariants, as `wallet_lock` (see ledger.py): N debits of 1 on
#    K credits admit exactly K, lots = balances = ledger.
# 2. With the lock held, a fresh snapshot sees every committed movement: one
#    statement reads the wallet and its lots, plans the take with
#    `take_from_lots_sql` (the SQL form of `take_from_lots`), and only when
#    the debit is plainly admissible — not frozen, not suspended, no debt,
#    enough available, no expired lot to sweep, the balance after stays above
#    0, the low-balance and auto-refill thresholds — inserts the `usage`
#    entry (ON CONFLICT DO NOTHING: a used idempotency key writes nothing)
#    and, only if it was inserted, moves the lots and the wallet.
# Otherwise nothing is written and `credits_debit` takes its transaction
# path, the one home of every refusal, replay, sweep and notification rule.


# The entry's columns the statement computes; the others are parameters.
_COMPUTED = ("wallet_id", "amount", "balance_after", "bucket_balances_after", "allocations", "created_at")


@lru_cache(maxsize=1)
def _parameter_fields() -> tuple:
    return tuple(field for field in LedgerEntry._meta.concrete_fields if field.attname not in _COMPUTED)


@lru_cache(maxsize=4)
def _one_round_trip_sql(by_external_org: bool) -> tuple[str, str]:
    quote = connection.ops.quote_name
    wallets, lots = quote(Wallet._meta.db_table), quote(CreditLot._meta.db_table)
    entries, links = quote(LedgerEntry._meta.db_table), quote(ProductLink._meta.db_table)
    company = "TRUE" if by_external_org else "w.company_id = %(company)s"
    link = "AND pl.external_org_id = %(org)s" if by_external_org else ""
    where = (
        f"w.product_id = %(product)s AND {company} AND EXISTS (SELECT 1 FROM {links} pl "
        f"WHERE pl.company_id = w.company_id AND pl.product_id = %(product)s {link})"
    )
    buckets = {bucket: quote(Wallet._meta.get_field(f"balance_{bucket}").column) for bucket in BUCKET_SPEND_RANK}
    total = "(" + " + ".join(f"w.{column}" for column in buckets.values()) + " - w.debt)"
    after = {
        bucket: f"w.{column} - COALESCE((SELECT SUM(p.take) FROM plan p WHERE p.bucket = '{bucket}'), 0) AS {column}"
        for bucket, column in buckets.items()
    }
    computed = {
        "wallet_id": "ok.id",
        "amount": "-%(amount)s",
        "balance_after": "ok.total_after",
        "bucket_balances_after": "jsonb_build_object("
        + ", ".join(f"'{bucket}', ok.{column}" for bucket, column in buckets.items())
        + ")",
        "allocations": "(SELECT COALESCE(jsonb_agg(jsonb_build_object('lot', p.id::text, 'bucket', p.bucket, "
        "'amount', -p.take) ORDER BY p.n), '[]'::jsonb) FROM plan p WHERE p.take > 0)",
        # The time of writing, under the lock (the ledger's order).
        "created_at": entry_time_sql(wallet="ok.id", at="clock_timestamp()"),
    }
    assert set(computed) == set(_COMPUTED)
    fields = LedgerEntry._meta.concrete_fields
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(computed.get(field.attname, f"%(f_{field.attname})s") for field in fields)
    suspended = account_suspended_sql(company="w.company_id", product="w.product_id")
    lock = f"SELECT w.id FROM {wallets} w WHERE {where} FOR UPDATE OF w"
    write = f"""
WITH w AS (SELECT w.*, {total} AS total FROM {wallets} w WHERE {where}),
lots AS (SELECT l.id, l.bucket, l.remaining, l.expires_at, l.created_at
           FROM {lots} l JOIN w ON l.wallet_id = w.id WHERE l.remaining > 0),
plan AS ({take_from_lots_sql(lots="lots", amount="%(amount)s")}),
ok AS (SELECT w.id, w.total - %(amount)s AS total_after, {", ".join(after.values())}
         FROM w
        WHERE NOT w.frozen AND w.debt = 0 AND w.total - w.reserved >= %(amount)s
          AND w.total - %(amount)s > 0
          AND (w.low_balance_threshold IS NULL OR w.total - %(amount)s >= w.low_balance_threshold)
          AND (w.auto_refill_threshold IS NULL OR w.total - %(amount)s >= w.auto_refill_threshold)
          AND NOT {suspended}
          AND NOT EXISTS (SELECT 1 FROM lots WHERE lots.expires_at <= %(now)s)
          AND (SELECT COALESCE(SUM(p.take), 0) FROM plan p) = %(amount)s),
entry AS (INSERT INTO {entries} ({columns}) SELECT {values} FROM ok
          ON CONFLICT DO NOTHING
          RETURNING wallet_id, balance_after, bucket_balances_after, allocations, created_at),
moved_lots AS (UPDATE {lots} AS lot SET remaining = lot.remaining - p.take FROM plan p
                WHERE lot.id = p.id AND p.take > 0 AND EXISTS (SELECT 1 FROM entry) RETURNING 1),
moved_wallet AS (UPDATE {wallets} AS wallet SET {", ".join(f"{column} = ok.{column}" for column in buckets.values())},
                        updated_at = %(now)s
                   FROM ok WHERE wallet.id = ok.id AND EXISTS (SELECT 1 FROM entry) RETURNING 1)
SELECT entry.* FROM entry"""
    return lock, write


def _parameter_types() -> dict[str, str]:
    types = {"product": "uuid", "company": "uuid", "org": "text", "amount": "bigint", "now": "timestamptz"}
    for field in LedgerEntry._meta.concrete_fields:
        db_type = field.db_type(connection) or "text"
        types[f"f_{field.attname}"] = "text" if db_type.startswith("varchar") else db_type
    return types


@lru_cache(maxsize=4)
def _prepared_form(by_external_org: bool) -> tuple[tuple[tuple[str, str], ...], str]:
    """The two statements as server-side prepared statements (planned once per
    connection, not on every debit: most of the statement's cost; config.db):
    ((name, PREPARE …), …) and the message that executes both."""
    types = _parameter_types()
    prepares, executes = [], []
    for text in _one_round_trip_sql(by_external_org):
        name, prepare, order = prepared_form(text, types=types)
        prepares.append((name, prepare))
        executes.append(execute_form(name, order))
    return tuple(prepares), "; ".join(executes)


def debit_in_one_round_trip(
    *, product_id, company_id, external_org_id, amount: int, job_id: str, source_service: str,
    idempotency_key: str, request_fingerprint: str, actor: str, metadata: dict,
) -> LedgerEntry | None:
    """The plainly admissible debit in one round trip (see above); None when
    it wrote nothing and the caller must decide. PostgreSQL only."""
    if external_org_id is None:
        try:
            company_id = UUID(str(company_id))
        except ValueError:
            return None
    now = timezone.now()
    entry = LedgerEntry(
        id=uuid.uuid4(), product_id=product_id, kind=EntryKind.USAGE, job_id=job_id, source_service=source_service,
        idempotency_key=idempotency_key, request_fingerprint=request_fingerprint, actor=actor, metadata=metadata,
    )
    params = {
        f"f_{field.attname}": field.get_db_prep_save(getattr(entry, field.attname), connection)
        for field in _parameter_fields()
    }
    params.update(
        product=product_id, company=company_id, org=(external_org_id or "").strip(), amount=amount, now=now
    )
    prepares, message = _prepared_form(external_org_id is not None)
    with connection.cursor() as cursor:
        ensure_prepared(cursor, prepares)
        cursor.execute(message, params)
        cursor.nextset()
        row = cursor.fetchone()
    if row is None:
        return None
    entry.wallet_id, entry.balance_after, balances, allocations, entry.created_at = row
    json_field = LedgerEntry._meta.get_field("allocations")  # jsonb arrives as text (Django's loader)
    entry.bucket_balances_after = json_field.from_db_value(balances, None, connection)
    entry.allocations = json_field.from_db_value(allocations, None, connection)
    entry.amount = -amount
    entry._state.adding = False
    entry._state.db = connection.alias
    return entry


def debit_locked(
    *,
    amount: int,
    job_id: str,
    source_service: str,
    idempotency_key: str | None,
    request_fingerprint: str = "",
    actor: str = "",
    metadata: dict | None = None,
    description: str = "",
    recorded_at: datetime | None = None,
    wallet: Wallet | None = None,
    wallet_id: UUID | None = None,
) -> LedgerEntry:
    """The debit itself, inside the caller's transaction, on `wallet` locked
    by the caller or on `wallet_id`, which it locks until the caller commits."""
    now = timezone.now()
    if wallet is None:
        wallet = wallet_lock(wallet_id=wallet_id)
    if wallet.frozen:
        raise wallet_frozen(wallet)
    company_suspended_check(company_id=wallet.company_id, product_id=wallet.product_id)
    lots = spendable_lots(wallet, now=now)
    if wallet.debt or amount > wallet.available:
        raise not_enough_credits(required=amount, available=wallet.available, debt=wallet.debt)
    take = take_from_lots(lots, amount)
    # `available` ≤ the lots' total, so the lots always cover a debit.
    assert take.shortfall == 0
    return entry_apply(
        wallet,
        kind=EntryKind.USAGE,
        now=now,
        lot_deltas=take.lot_deltas,
        job_id=job_id,
        source_service=source_service,
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
        actor=actor,
        metadata=metadata or {},
        description=description,
        recorded_at=recorded_at,
    )


# --- Refunds -----------------------------------------------------------------------


@dataclass(frozen=True)
class RefundResult:
    entry: LedgerEntry
    refunded: int
    forfeited: int
    replayed: bool = False


def _claimed_per_lot(previous: list[LedgerEntry]) -> dict[str, int]:
    """What earlier refunds of one entry already gave back (or forfeited), per lot."""
    claimed: dict[str, int] = {}
    for entry in previous:
        for item in entry.allocations:
            lot = item.get("lot")
            if lot is None:
                continue
            part = item.get("claimed", item.get("forfeited", 0))
            claimed[lot] = claimed.get(lot, 0) + part
    return claimed


def refundable_left(source: LedgerEntry, previous: list[LedgerEntry]) -> list[tuple[str, int]]:
    """(lot id, credits of `source` still refundable from that lot), latest-spent lot first."""
    claimed = _claimed_per_lot(previous)
    left = []
    for item in reversed(source.allocations):
        lot = item.get("lot")
        if lot is None or item.get("amount", 0) >= 0:
            continue
        taken = -item["amount"]
        # A debit takes from each lot once, so per lot: taken − claimed.
        still = taken - claimed.get(lot, 0)
        if still > 0:
            left.append((lot, still))
    return left


def give_back(
    wallet: Wallet, *, source: LedgerEntry, amount: int, kind: str, now, **fields
) -> tuple[LedgerEntry, int, int]:
    """Return up to `amount` of what `source` took to the lots it took it from
    (latest-spent first); a share whose lot has expired is forfeited and the
    entry says so. Credits returned pay the debt first. Wallet locked.
    Returns (entry, refunded, forfeited)."""
    previous = list(LedgerEntry.objects.filter(reference=source, kind__in=[EntryKind.REFUND]))
    plan, need = [], amount
    for lot_id, still in refundable_left(source, previous):
        if need == 0:
            break
        part = min(still, need)
        plan.append((lot_id, part))
        need -= part
    lots = CreditLot.objects.in_bulk([lot_id for lot_id, _ in plan])
    returns, extra, forfeited = [], [], 0
    for lot_id, part in plan:
        lot = lots[UUID(lot_id)]
        if lot.is_expired(now):
            forfeited += part
            extra.append({"lot": lot_id, "bucket": lot.bucket, "forfeited": part, "amount": 0})
        else:
            returns.append((lot, part))
            extra.append({"lot": lot_id, "claimed": part, "amount": 0})
    deltas, debt_delta = credit_lot_deltas(wallet, returns)
    refunded = sum(part for _, part in returns)
    if forfeited:
        note = f"{forfeited} not returned: the lot expired since the debit"
        fields["description"] = f"{fields.get('description', '')}; {note}".lstrip("; ")
    entry = entry_apply(
        wallet,
        kind=kind,
        now=now,
        lot_deltas=deltas,
        debt_delta=debt_delta,
        extra_allocations=extra,
        reference=source,
        **fields,
    )
    return entry, refunded, forfeited


def credits_refund(
    *,
    product_id: UUID,
    company_id,
    refund_for_job_id: str,
    source_service: str,
    reason: str,
    amount: int | None = None,
    idempotency_key: str | None = None,
    actor: str = "",
) -> RefundResult:
    """Give back (part of) the debit of (refundForJobId, sourceService) to the
    lots it took from; by default all that is left. Cumulative refunds never
    exceed the debit: asking for more is 409 with what is left. Allowed on a
    frozen wallet. A repeat of the idempotency key is a replay."""
    if amount is not None:
        check_positive(amount, field="amount")
    wallet = wallet_get(product_id=product_id, company_id=company_id)
    key = idempotency_key or default_refund_key(
        refund_for_job_id=refund_for_job_id, source_service=source_service, reason=reason
    )
    request_fingerprint = fingerprint(amount=amount, job=refund_for_job_id, source=source_service, reason=reason)
    stored = LedgerEntry.objects.filter(product_id=product_id, idempotency_key=key).first()
    if stored is None:
        try:
            with transaction.atomic():
                return _refund_locked(
                    wallet_id=wallet.pk,
                    refund_for_job_id=refund_for_job_id,
                    source_service=source_service,
                    reason=reason,
                    amount=amount,
                    key=key,
                    request_fingerprint=request_fingerprint,
                    actor=actor,
                )
        except IntegrityError:
            stored = LedgerEntry.objects.filter(product_id=product_id, idempotency_key=key).first()
            if stored is None:
                raise
    if (
        stored.request_fingerprint != request_fingerprint
        or stored.kind != EntryKind.REFUND
        or stored.wallet_id != wallet.pk
    ):
        raise idempotency_conflict(stored, "This refund idempotency key was already used with another request.")
    forfeited = sum(item.get("forfeited", 0) for item in stored.allocations)
    return RefundResult(entry=stored, refunded=stored.amount, forfeited=forfeited, replayed=True)


def _refund_locked(
    *, wallet_id, refund_for_job_id, source_service, reason, amount, key, request_fingerprint, actor
) -> RefundResult:
    now = timezone.now()
    wallet = wallet_lock(wallet_id=wallet_id)
    debit = (
        LedgerEntry.objects.filter(
            wallet=wallet, kind=EntryKind.USAGE, job_id=refund_for_job_id, source_service=source_service
        )
        .order_by("created_at", "id")
        .first()
    )
    if debit is None:
        raise NotFound("No debit with this jobId and sourceService in this wallet.")
    previous = list(LedgerEntry.objects.filter(reference=debit, kind=EntryKind.REFUND))
    left = sum(part for _, part in refundable_left(debit, previous))
    debited = -debit.amount
    if amount is None and left == 0 or amount is not None and amount > left:
        raise Conflict(
            f"Only {left} of this debit's {debited} credits are left to refund.",
            details={"debited": debited, "refundable": left, "requested": amount, "ledgerEntryId": str(debit.pk)},
        )
    entry, refunded, forfeited = give_back(
        wallet,
        source=debit,
        amount=left if amount is None else amount,
        kind=EntryKind.REFUND,
        now=now,
        reason=reason,
        job_id=refund_for_job_id,
        source_service=source_service,
        idempotency_key=key,
        request_fingerprint=request_fingerprint,
        actor=actor,
        description=f"Refund of {refund_for_job_id}",
    )
    return RefundResult(entry=entry, refunded=refunded, forfeited=forfeited)
