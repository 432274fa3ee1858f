"""The ledger core: every movement of a wallet goes through `entry_apply`,
called with the wallet row locked.

Locking rule (the one lock of this app): a transaction that changes a
wallet's lots, balances, debt, holds or ledger first takes
`SELECT … FOR UPDATE` on the wallet row (`wallet_lock`). That lock protects
every invariant that spans rows: no two debits can both spend the last
credits (each re-reads the balances after the other committed), the lots sum
to the wallet's bucket balances, the ledger sums to the balance, and
`reserved` is the sum of the active holds. A transaction locks at most one
wallet, except a transfer, which locks both in primary-key order."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime
from uuid import UUID

from django.db import connection
from django.db.models import Case, Exists, F, IntegerField, OuterRef, Value, When
from django.utils import timezone

from companies.models import ProductLink
from companies.selectors import product_links

from ..models import BUCKET_SPEND_RANK, CreditLot, EntryKind, LedgerEntry, Wallet
from ..notifications import balance_fell

_BUCKET_FIELD = {bucket: f"balance_{bucket}" for bucket in BUCKET_SPEND_RANK}
_WALLET_MONEY_FIELDS = ["balance_subscription", "balance_promotional", "balance_topup", "debt", "reserved", "updated_at"]


def wallet_lock(*, wallet_id: UUID) -> Wallet:
    """The wallet row, locked until the end of the caller's transaction.
    Only the wallet (`of=("self",)`): a plain FOR UPDATE would lock the joined
    product row too, and every debit's commit (its ledger row's deferred
    foreign key to the product) would then wait for us — a deadlock as soon
    as we wait for a second wallet (`wallet_transfer`, merges)."""
    return Wallet.objects.select_for_update(of=("self",)).select_related("product").get(pk=wallet_id)


def wallet_lock_visible(*, product_id: UUID, company_id=None, external_org_id: str | None = None) -> Wallet | None:
    """The product's wallet of a company visible to it (by id or external org
    id), locked; None when there is none (the caller finds out which 404 it
    is). On PostgreSQL one statement also reads the wallet's spendable lots
    (see `_lock_with_lots`): the debit's hot path needs no other read."""
    if external_org_id is None:
        try:
            company_id = UUID(str(company_id))
        except ValueError:
            return None
    if connection.vendor == "postgresql":
        return _lock_with_lots(product_id=product_id, company_id=company_id, external_org_id=external_org_id)
    wallets = Wallet.objects.select_for_update(of=("self",)).filter(product_id=product_id)
    # Only a wallet of a company visible to the product (companies' rule).
    links = product_links(product_id=product_id).filter(company=OuterRef("company_id"))
    if external_org_id is not None:
        links = links.filter(external_org_id=external_org_id.strip())
    else:
        wallets = wallets.filter(company_id=company_id)
    return wallets.filter(Exists(links)).first()


def spend_order_sql(alias: str) -> str:
    """The spending order of `spendable_lots` (SPEC §7) as an SQL ORDER BY
    list over the lots relation `alias`: expiry first (none last), then
    subscription, promotional, top-up, then age."""
    rank = f"CASE {alias}.bucket " + " ".join(f"WHEN '{b}' THEN {r}" for b, r in BUCKET_SPEND_RANK.items()) + " END"
    return f"{alias}.expires_at ASC NULLS LAST, {rank}, {alias}.created_at, {alias}.id"


_LOCK_SQL = """
SELECT {columns},
       w.xmin = (SELECT fresh.xmin FROM {wallets} fresh WHERE fresh.id = w.id) AS lots_current,
       (SELECT coalesce(json_agg(json_build_object(
                   'id', l.id, 'bucket', l.bucket, 'amount', l.amount, 'remaining', l.remaining,
                   'expires_at', l.expires_at)
               ORDER BY {order}), '[]'::json)
          FROM {lots} l WHERE l.wallet_id = w.id AND l.remaining > 0) AS lots
  FROM {wallets} w
 WHERE w.product_id = %(product)s AND {company_condition}
   AND EXISTS (SELECT 1 FROM {links} pl WHERE pl.company_id = w.company_id AND pl.product_id = %(product)s
               {link_condition})
   FOR UPDATE OF w
"""


@lru_cache(maxsize=4)
def _lock_sql(by_external_org: bool) -> str:
    quote = connection.ops.quote_name
    return _LOCK_SQL.format(
        columns=", ".join(f"w.{quote(field.column)}" for field in Wallet._meta.concrete_fields),
        wallets=quote(Wallet._meta.db_table),
        lots=quote(CreditLot._meta.db_table),
        links=quote(ProductLink._meta.db_table),
        order=spend_order_sql("l"),
        company_condition="TRUE" if by_external_org else "w.company_id = %(company)s",
        link_condition="AND pl.external_org_id = %(org)s" if by_external_org else "",
    )


def _lock_with_lots(*, product_id, company_id, external_org_id) -> Wallet | None:
    """Lock the wallet row and read its spendable lots in one statement.

    The lots come from the statement's snapshot, taken before the lock was
    granted: if another transaction changed the wallet while we waited, they
    may be stale. Every change of a lot also updates its wallet row under
    this same lock, so comparing the locked row's version (`xmin`) with the
    snapshot's says whether they are current; when not, `spendable_lots`
    reads them again with a fresh statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            _lock_sql(external_org_id is not None),
            {"product": product_id, "company": company_id, "org": (external_org_id or "").strip()},
        )
        row = cursor.fetchone()
    if row is None:
        return None
    names = [field.attname for field in Wallet._meta.concrete_fields]
    wallet = Wallet.from_db(connection.alias, names, [
        field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
        for field, value in zip(Wallet._meta.concrete_fields, row[: len(names)], strict=True)
    ])
    lots_current, lots = row[len(names)], row[len(names) + 1]
    if lots_current:
        wallet._locked_lots = [_lot_from_json(wallet, item) for item in lots]
    return wallet


def _lot_from_json(wallet: Wallet, item: dict) -> CreditLot:
    expires_at = item["expires_at"]
    lot = CreditLot(
        id=UUID(item["id"]), wallet_id=wallet.pk, bucket=item["bucket"], amount=item["amount"],
        remaining=item["remaining"], expires_at=datetime.fromisoformat(expires_at) if expires_at else None,
    )
    lot._state.adding = False
    lot._state.db = connection.alias
    return lot


def spendable_lots(wallet: Wallet, *, now: datetime) -> list[CreditLot]:
    """The wallet's lots with credits left, in spending order (SPEC §7): the
    lot that expires first, then subscription before promotional before
    top-up, lots without expiry last. Lots that expired but were not swept yet
    are swept here first (an `expiry` entry each), so a debit never spends
    them. Call with the wallet locked."""
    lots = wallet.__dict__.pop("_locked_lots", None)
    if lots is None:
        rank = Case(
            *(When(bucket=bucket, then=Value(r)) for bucket, r in BUCKET_SPEND_RANK.items()),
            output_field=IntegerField(),
        )
        lots = list(
            CreditLot.objects.filter(wallet=wallet, remaining__gt=0).order_by(
                F("expires_at").asc(nulls_last=True), rank, "created_at", "id"
            )
        )
    expired = [lot for lot in lots if lot.is_expired(now)]
    for lot in expired:
        lot_expire(wallet, lot, now=now)
    return [lot for lot in lots if not lot.is_expired(now)] if expired else lots


def lot_expire(wallet: Wallet, lot: CreditLot, *, now: datetime) -> LedgerEntry:
    """An `expiry` entry for what is left in `lot` (wallet locked)."""
    return entry_apply(
        wallet,
        kind=EntryKind.EXPIRY,
        lot_deltas=[(lot, -lot.remaining)],
        now=now,
        lot=lot,
        actor="system:credits.expire_credits",
        description=f"{lot.get_bucket_display()} lot of {lot.amount} expired",
    )


@dataclass
class Take:
    lot_deltas: list[tuple[CreditLot, int]]
    shortfall: int


def take_from_lots(lots: list[CreditLot], amount: int) -> Take:
    """Plan taking `amount` from `lots` in their order; `shortfall` is what they cannot cover."""
    deltas, left = [], amount
    for lot in lots:
        if left == 0:
            break
        part = min(lot.remaining, left)
        if part:
            deltas.append((lot, -part))
            left -= part
    return Take(lot_deltas=deltas, shortfall=left)


def take_from_lots_sql(*, lots: str, amount: str) -> str:
    """`take_from_lots` over `spendable_lots`, as SQL: a query over the lots
    relation `lots` (id, bucket, remaining, expires_at, created_at; only lots
    with credits left) answering (id, bucket, take, n) — what each lot gives,
    in spending order `n` — for the SQL expression `amount`. Each lot gives
    min(its remaining, what the lots before it left uncovered): the greedy
    plan of `take_from_lots`. tests/credits/test_fast_debit.py checks they
    agree on many cases."""
    order = spend_order_sql("s")
    return (
        f"SELECT s.id, s.bucket, LEAST(s.remaining, GREATEST(0, ({amount}) - COALESCE(SUM(s.remaining) OVER "
        f"(ORDER BY {order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))) AS take, "
        f"ROW_NUMBER() OVER (ORDER BY {order}) AS n FROM {lots} s"
    )


def entry_apply(
    wallet: Wallet,
    *,
    kind: str,
    now: datetime,
    lot_deltas: list[tuple[CreditLot, int]] = (),
    debt_delta: int = 0,
    extra_allocations: list[dict] = (),
    recorded_at: datetime | None = None,
    **fields,
) -> LedgerEntry:
    """Move the lots by `lot_deltas` and the debt by `debt_delta` (positive:
    the wallet owes more), write the ledger entry that says so, and keep the
    wallet's balances in step. The entry's amount is the sum of the moves.
    The entry is stamped with the time of writing (`recorded_at` backfills
    history: imports and the demo). The caller holds the wallet lock."""
    before = wallet.total
    allocations: list[dict] = []
    moved = [(lot, delta) for lot, delta in lot_deltas if delta]
    for lot, delta in moved:
        lot.remaining += delta
        setattr(wallet, _BUCKET_FIELD[lot.bucket], getattr(wallet, _BUCKET_FIELD[lot.bucket]) + delta)
        allocations.append({"lot": str(lot.pk), "bucket": lot.bucket, "amount": delta})
    if debt_delta:
        wallet.debt += debt_delta
        allocations.append({"debt": -debt_delta, "amount": -debt_delta})
    wallet.updated_at = now
    entry = LedgerEntry(
        wallet=wallet,
        product_id=wallet.product_id,
        kind=kind,
        amount=sum(item["amount"] for item in allocations),
        balance_after=wallet.total,
        bucket_balances_after={str(k): v for k, v in wallet.bucket_balances().items()},
        allocations=allocations + list(extra_allocations),
        # The time of writing, not `now` (a sweep's cut-off): the ledger's order.
        created_at=recorded_at or timezone.now(),
        **fields,
    )
    if connection.vendor == "postgresql":
        _write_in_one_statement(wallet, moved, entry, monotonic=recorded_at is None)
    else:
        for lot, delta in moved:
            CreditLot.objects.filter(pk=lot.pk).update(remaining=F("remaining") + delta)
        wallet.save(update_fields=_WALLET_MONEY_FIELDS)
        entry.save(force_insert=True)
    if wallet.total < before:
        balance_fell(wallet, before=before, after=wallet.total, entry=entry)
        if wallet.auto_refill_threshold is not None:
            from .refills import refill_check  # the refill rule's home; imported late (it imports wallets)

            refill_check(wallet)
    return entry


def entry_time_sql(*, wallet: str, at: str) -> str:
    """SQL for an entry's time of writing: `at`, but never before the
    wallet's last entry (+1 µs). Written under the wallet lock, entries are
    then in the order of their balances even when the application's and the
    database's clocks disagree (the one-round-trip debit stamps with the
    database's)."""
    entries = connection.ops.quote_name(LedgerEntry._meta.db_table)
    return (
        f"GREATEST({at}, (SELECT e.created_at + interval '1 microsecond' FROM {entries} e "
        f"WHERE e.wallet_id = {wallet} ORDER BY e.created_at DESC, e.id DESC LIMIT 1))"
    )


@lru_cache(maxsize=32)
def _one_statement_sql(moved_lots: int, monotonic: bool) -> str:
    quote = connection.ops.quote_name
    ctes = []
    if moved_lots:
        rows = ", ".join(["(%s::uuid, %s::bigint)"] * moved_lots)
        ctes.append(
            f"moved_lots AS (UPDATE {quote(CreditLot._meta.db_table)} AS lot SET remaining = lot.remaining + v.delta "
            f"FROM (VALUES {rows}) AS v(id, delta) WHERE lot.id = v.id RETURNING 1)"
        )
    assignments = ", ".join(f"{quote(Wallet._meta.get_field(name).column)} = %s" for name in _WALLET_MONEY_FIELDS)
    ctes.append(f"moved_wallet AS (UPDATE {quote(Wallet._meta.db_table)} SET {assignments} WHERE id = %s RETURNING 1)")
    columns = ", ".join(quote(field.column) for field in LedgerEntry._meta.concrete_fields)
    placeholders = ", ".join(
        entry_time_sql(wallet="%s", at="%s") if monotonic and field.attname == "created_at" else "%s"
        for field in LedgerEntry._meta.concrete_fields
    )
    return (
        f"WITH {', '.join(ctes)} INSERT INTO {quote(LedgerEntry._meta.db_table)} ({columns}) VALUES ({placeholders}) "
        "RETURNING created_at"
    )


def _write_in_one_statement(
    wallet: Wallet, moved: list[tuple[CreditLot, int]], entry: LedgerEntry, *, monotonic: bool
) -> None:
    """The lot updates, the wallet update and the entry insert of one
    movement as one statement (data-modifying CTEs all run to completion,
    constraints and all): one round trip instead of three or more. The values
    are exactly those of the ORM path, except that with `monotonic` the
    entry's time is never before the wallet's last entry (`entry_time_sql`)."""
    params: list = []
    for lot, delta in moved:
        params += [lot.pk, delta]
    for name in _WALLET_MONEY_FIELDS:
        params.append(Wallet._meta.get_field(name).get_db_prep_save(getattr(wallet, name), connection))
    params.append(wallet.pk)
    for field in LedgerEntry._meta.concrete_fields:
        value = field.get_db_prep_save(field.pre_save(entry, True), connection)
        params += [value, wallet.pk] if monotonic and field.attname == "created_at" else [value]
    with connection.cursor() as cursor:
        cursor.execute(_one_statement_sql(len(moved), monotonic), params)
        (entry.created_at,) = cursor.fetchone()
    entry._state.adding = False
    entry._state.db = connection.alias


def charge(wallet: Wallet, *, amount: int, kind: str, now: datetime, **fields) -> LedgerEntry:
    """Charge `amount` for work done: from the lots in spending order, and
    what they cannot cover as debt. Never refused (frozen, suspended or in
    debt: a charge for work done is never lost). Wallet locked."""
    take = take_from_lots(spendable_lots(wallet, now=now), amount)
    return entry_apply(wallet, kind=kind, now=now, lot_deltas=take.lot_deltas, debt_delta=take.shortfall, **fields)


def credit_lot_deltas(wallet: Wallet, returns: list[tuple[CreditLot, int]]) -> tuple[list[tuple[CreditLot, int]], int]:
    """Credits arriving into lots pay the debt first (SPEC §7): the planned
    `returns` reduced by what goes to the debt, and the (negative) debt delta."""
    owed = wallet.debt
    deltas = []
    for lot, amount in returns:
        to_debt = min(owed, amount)
        owed -= to_debt
        deltas.append((lot, amount - to_debt))
    return deltas, owed - wallet.debt
