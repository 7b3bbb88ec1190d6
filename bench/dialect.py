"""What does Tally's own small dialect layer cost next to SQLAlchemy Core?

Tally writes its SQL once, with ``$1`` placeholders, against a connection of
four calls (storage/), and keeps a second form of a statement only where
the dialects differ. SQLAlchemy Core (asyncio) is the usual alternative. On
the same database, the two are timed sample by sample, alternating, on:

  (a) the XP flush of 10,000 members (1 % of them with level-up coins):
      Tally's ``Database.add_xp`` against its Core equivalent, one
      transaction of ``insert(members).on_conflict_do_update`` with the same
      additive upsert (``xp = members.xp + excluded.xp``) executed with the
      10,000 rows as parameter sets (the driver's executemany), then the
      same for the wallets of the members with coins, and their ledger rows;
      on PostgreSQL, where Tally's schema has ``tally_flushes``, it first
      claims the batch's flush ID and forgets expired ones, as Tally does;
  (b) one coin transfer between two random members that hold coins:
      ``Database.transfer`` against the same statements as Core constructs
      (both wallets locked in user-ID order, the conditional debit with the
      sender's name, the credit upsert, each returning its balance, and the
      ledger row) in one transaction.

On PostgreSQL (asyncpg under both) and on SQLite (aiosqlite under both;
SQLAlchemy's transactions begin with BEGIN IMMEDIATE and its connections
use synchronous = NORMAL, as Tally's do). The Core statements are built at
each call, as Core code usually builds them (SQLAlchemy caches their
compiled form). Before timing, one flush and one transfer through each, on
a guild of their own, must leave the same rows behind.

Prints p50 and p99 of the wall time and the median CPU time of this process
(``time.process_time``: the dialect layer's own cost; SQLite's work is in
this process too, PostgreSQL's is in the server) per operation, and the
ratios SQLAlchemy/Tally.

SQLAlchemy is not one of Tally's dependencies; install it into the venv to
run this (``.venv/bin/pip install "sqlalchemy[asyncio]"``). The PostgreSQL
server is the one at ``TALLY_BENCH_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres, used only to create and drop
the database ``tally_bench_dialect_<pid>``); without one, SQLite only.

    .venv/bin/python bench/dialect.py            # 30 flushes and 500 transfers each
    .venv/bin/python bench/dialect.py --quick    # 6 flushes and 100 transfers each
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:
    import sqlalchemy
    from sqlalchemy import BigInteger, Column, MetaData, Table, Text, delete, event, insert, select, update
    from sqlalchemy.dialects import postgresql as pg
    from sqlalchemy.dialects import sqlite as lite
    from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
except ImportError as exc:  # greenlet too: SQLAlchemy's asyncio needs it
    missing = exc.name or "greenlet"
    sys.exit(
        f"bench/dialect.py needs SQLAlchemy with its asyncio support ({missing} is missing), which is not one of "
        'Tally\'s dependencies; install it into the venv: .venv/bin/pip install "sqlalchemy[asyncio]"'
    )

import asyncpg  # noqa: E402
from common import POSTGRES_ADMIN_URL, create_database, drop_database, p50_p99  # noqa: E402

from db import Database, InsufficientCoins, XpGain  # noqa: E402
from storage import levels  # noqa: E402

GUILD = 123456789012345678
CHECK_GUILDS = (GUILD + 1, GUILD + 2)  # one for each layer's check run
MEMBERS = 20_000  # in the guild; each flush takes 10,000 of them
FLUSH_SIZE = 10_000
STARTING_COINS = 1_000

# Tally's tables as Core sees them (the columns these statements use; the schema itself is Tally's).
metadata = MetaData()
members = Table(
    "members",
    metadata,
    Column("guild_id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    Column("xp", BigInteger),
    Column("name", Text),
    Column("first_seen", BigInteger),
)
wallets = Table(
    "wallets",
    metadata,
    Column("guild_id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    Column("coins", BigInteger),
    Column("last_daily", BigInteger),
    Column("name", Text),
)
ledger = Table(
    "ledger",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("guild_id", BigInteger),
    Column("from_id", BigInteger),
    Column("to_id", BigInteger),
    Column("amount", BigInteger),
    Column("kind", Text),
    Column("actor_id", BigInteger),
    Column("reason", Text),
    Column("created_at", BigInteger),
)
flushes = Table("tally_flushes", metadata, Column("id", BigInteger, primary_key=True))


# -- the SQLAlchemy Core side ---------------------------------------------------------------


class CoreStore:
    """The flush and the transfer written with SQLAlchemy Core, on an AsyncEngine."""

    def __init__(self, engine: AsyncEngine, dialect: str, flush_ids: bool) -> None:
        self.engine = engine
        self.insert = pg.insert if dialect == "postgres" else lite.insert
        self.flush_ids = flush_ids  # Tally's schema has tally_flushes (PostgreSQL): claim each batch's ID

    async def add_xp(self, gains: list[XpGain]) -> None:
        gains = sorted(gains)  # key order, as Tally's: two writers lock rows in the same order
        if not gains:
            return
        async with self.engine.begin() as conn:
            if self.flush_ids:
                claim = self.insert(flushes).values(id=levels.new_flush_id()).on_conflict_do_nothing()
                if (await conn.execute(claim.returning(flushes.c.id))).first() is None:
                    return
                forget_before = (int(time.time() * 1000) - levels.FLUSH_IDS_KEPT_MS) << 20
                await conn.execute(delete(flushes).where(flushes.c.id < forget_before))
            upsert = self.insert(members)
            upsert = upsert.on_conflict_do_update(
                index_elements=[members.c.guild_id, members.c.user_id],
                set_={"xp": members.c.xp + upsert.excluded.xp, "name": upsert.excluded.name},
            )
            await conn.execute(
                upsert,
                [
                    {"guild_id": g.guild_id, "user_id": g.user_id, "xp": g.xp, "name": g.name, "first_seen": g.seen_at}
                    for g in gains
                ],
            )
            paid = [g for g in gains if g.coins > 0]
            if not paid:
                return
            pay = self.insert(wallets)
            pay = pay.on_conflict_do_update(
                index_elements=[wallets.c.guild_id, wallets.c.user_id],
                set_={"coins": wallets.c.coins + pay.excluded.coins, "name": pay.excluded.name},
            )
            await conn.execute(
                pay, [{"guild_id": g.guild_id, "user_id": g.user_id, "coins": g.coins, "name": g.name} for g in paid]
            )
            await conn.execute(
                insert(ledger),
                [
                    {
                        "guild_id": g.guild_id,
                        "from_id": None,
                        "to_id": g.user_id,
                        "amount": g.coins,
                        "kind": "level_up",
                        "actor_id": g.user_id,
                        "reason": None,
                        "created_at": g.seen_at,
                    }
                    for g in paid
                ],
            )

    async def transfer(
        self, guild_id: int, from_id: int, to_id: int, amount: int, *, from_name: str, to_name: str
    ) -> tuple[int, int]:
        if from_id == to_id or amount <= 0:
            raise ValueError("a transfer needs two members and a positive amount")

        def wallet(user_id: int):
            return (wallets.c.guild_id == guild_id) & (wallets.c.user_id == user_id)

        async with self.engine.begin() as conn:
            if to_id < from_id:  # both wallets locked in user-ID order: the receiver's first
                await conn.execute(update(wallets).where(wallet(to_id)).values(coins=wallets.c.coins))
            debit = update(wallets).where(wallet(from_id) & (wallets.c.coins >= amount))
            debit = debit.values(coins=wallets.c.coins - amount, name=from_name).returning(wallets.c.coins)
            sender = (await conn.execute(debit)).scalar()
            if sender is None:
                balance = (await conn.execute(select(wallets.c.coins).where(wallet(from_id)))).scalar()
                raise InsufficientCoins(balance or 0)
            credit = self.insert(wallets).values(guild_id=guild_id, user_id=to_id, coins=amount, name=to_name)
            credit = credit.on_conflict_do_update(
                index_elements=[wallets.c.guild_id, wallets.c.user_id],
                set_={"coins": wallets.c.coins + credit.excluded.coins, "name": credit.excluded.name},
            )
            receiver = (await conn.execute(credit.returning(wallets.c.coins))).scalar()
            await conn.execute(
                insert(ledger).values(
                    guild_id=guild_id,
                    from_id=from_id,
                    to_id=to_id,
                    amount=amount,
                    kind="transfer",
                    actor_id=from_id,
                    reason=None,
                    created_at=int(time.time()),
                )
            )
            return sender, receiver


def sqlite_engine(path: Path) -> AsyncEngine:
    """An engine on the file, its transactions begun as Tally's are (BEGIN IMMEDIATE), synchronous = NORMAL."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection, connection_record) -> None:
        dbapi_connection.isolation_level = None  # the driver's own BEGIN off: SQLAlchemy's "begin" below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# -- timing ---------------------------------------------------------------------------------


def gains_for(guild_id: int, user_ids: list[int], rng: random.Random) -> list[XpGain]:
    """One flush's worth: 5 XP each, 1 % with 50 level-up coins."""
    return [XpGain(guild_id, u, 5, f"member{u % 100000}", 1_795_000_000, 50 * (rng.random() < 0.01)) for u in user_ids]


async def rows_of(db: Database, guild_id: int) -> tuple:
    """Everything a flush and a transfer leave in a guild, for comparing the two layers."""
    found = []
    for query in (
        "SELECT user_id, xp, name, first_seen FROM members WHERE guild_id = $1 ORDER BY user_id",
        "SELECT user_id, coins, name FROM wallets WHERE guild_id = $1 ORDER BY user_id",
        "SELECT from_id, to_id, amount, kind, actor_id, reason FROM ledger WHERE guild_id = $1 ORDER BY id",
    ):
        found.append([tuple(row) for row in await db._store.fetch(query, guild_id)])
    return tuple(found)


async def check_same(db: Database, core: CoreStore, rng: random.Random) -> None:
    """One flush (twice, the second adding to the first) and one transfer through each layer, in guilds of their own."""
    user_ids = rng.sample(range(10**17, 10**18), 200)
    balances = []
    for layer, guild_id in ((db, CHECK_GUILDS[0]), (core, CHECK_GUILDS[1])):
        for seed in (1, 2):
            await layer.add_xp(gains_for(guild_id, user_ids, random.Random(seed)))
        await layer.add_xp([XpGain(guild_id, u, 0, f"member{u % 100000}", 0, 100) for u in user_ids[:2]])
        balances.append(await layer.transfer(guild_id, user_ids[0], user_ids[1], 30, from_name="a", to_name="b"))
    assert balances[0] == balances[1], "the two transfers returned other balances"
    assert await rows_of(db, CHECK_GUILDS[0]) == await rows_of(db, CHECK_GUILDS[1]), "the layers left other rows"


async def alternating(
    operations: dict[str, Callable[[], Awaitable[object]]], repeat: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds of each operation, run back to back ``repeat`` times, the order alternating."""
    samples = {key: ([], []) for key in operations}
    keys = list(operations)
    for i in range(repeat):
        for key in keys if i % 2 == 0 else reversed(keys):
            cpu, start = time.process_time(), time.perf_counter()
            await operations[key]()
            samples[key][0].append(time.perf_counter() - start)
            samples[key][1].append(time.process_time() - cpu)
    return samples


def report(backend: str, figure: str, samples: dict[str, tuple[list[float], list[float]]]) -> None:
    cells = {}
    for layer, (wall, cpu) in samples.items():
        p50, p99 = p50_p99(wall)
        cells[layer] = (p50, p99, statistics.median(cpu))
        print(
            f"  {backend:<10} {figure:<26} {layer:<10} wall p50 {p50 * 1000:8.2f} ms  p99 {p99 * 1000:8.2f} ms   "
            f"CPU here {cells[layer][2] * 1000:8.2f} ms"
        )
    tally, core = cells["Tally"], cells["SQLAlchemy"]
    print(
        f"  {backend:<10} {figure:<26} SQLAlchemy/Tally: wall p50 x{core[0] / tally[0]:.2f}, "
        f"p99 x{core[1] / tally[1]:.2f}, CPU here x{core[2] / tally[2]:.2f}",
        flush=True,
    )


async def measure(backend: str, db: Database, core: CoreStore, args: argparse.Namespace) -> None:
    rng = random.Random(20261122)
    await check_same(db, core, rng)
    user_ids = rng.sample(range(10**17, 10**18), MEMBERS)
    for start in range(0, MEMBERS, 5_000):  # every member with XP and coins
        await db.add_xp([XpGain(GUILD, u, 5, "m", 0, STARTING_COINS) for u in user_ids[start : start + 5_000]])
    if backend == "PostgreSQL":
        await db._store.execute("VACUUM ANALYZE")  # as autovacuum would soon after such a load

    def flush(layer) -> Callable[[], Awaitable[None]]:
        batches = iter([gains_for(GUILD, rng.sample(user_ids, FLUSH_SIZE), rng) for _ in range(args.flushes)])
        return lambda: layer.add_xp(next(batches))  # the batch built beforehand, untimed

    samples = await alternating({"Tally": flush(db), "SQLAlchemy": flush(core)}, args.flushes)
    report(backend, f"flush of {FLUSH_SIZE:,} members", samples)

    def transfer(layer) -> Callable[[], Awaitable[tuple[int, int]]]:
        def one() -> Awaitable[tuple[int, int]]:
            from_id, to_id = rng.sample(user_ids, 2)
            return layer.transfer(GUILD, from_id, to_id, rng.randrange(1, 20), from_name="s", to_name="r")

        return one

    samples = await alternating({"Tally": transfer(db), "SQLAlchemy": transfer(core)}, args.transfers)
    report(backend, "transfer", samples)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flushes", type=int, default=30, help="flushes of 10,000 members timed per layer")
    parser.add_argument("--transfers", type=int, default=500, help="transfers timed per layer")
    parser.add_argument("--quick", action="store_true", help="6 flushes and 100 transfers per layer")
    args = parser.parse_args()
    if args.quick:
        args.flushes, args.transfers = 6, 100
    print(
        f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, asyncpg {asyncpg.__version__}, "
        f"{platform.machine()}, {platform.system()}; {args.flushes} flushes and {args.transfers} transfers per layer"
    )

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tally.db"
        db = await Database.open(path)
        engine = sqlite_engine(path)
        try:
            await measure("SQLite", db, CoreStore(engine, "sqlite", flush_ids=False), args)
        finally:
            await engine.dispose()
            await db.close()

    name = f"tally_bench_dialect_{os.getpid()}"
    url = await create_database(
        POSTGRES_ADMIN_URL, name, "PostgreSQL left out: no server answers at {server} ({error})"
    )
    if url is None:
        return
    try:
        db = await Database.open(url)
        engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1), pool_size=5)
        try:
            async with engine.connect() as conn:
                flush_ids = await conn.scalar(sqlalchemy.text("SELECT to_regclass('tally_flushes') IS NOT NULL"))
            await measure("PostgreSQL", db, CoreStore(engine, "postgres", flush_ids=flush_ids), args)
        finally:
            await engine.dispose()
            await db.close()
    finally:
        await drop_database(POSTGRES_ADMIN_URL, name)


if __name__ == "__main__":
    asyncio.run(main())
