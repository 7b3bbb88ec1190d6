"""Copying every row of one Tally database into another (``python bot.py copy-data``).

Each table is read in key order, a batch at a time (keyset pages, so a deep
page costs what the first does), and written into the target inside ONE
transaction: if anything fails, verification included, the target is rolled
back to empty and the source was only ever read. The statements are written
out per table; the only dialect difference is the order of a case's earlier
reasons (SQLite's rowid, PostgreSQL's id column), and PostgreSQL's ledger ID
counter, moved past the copied IDs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TextIO

from storage import postgres, sqlite
from storage.records import DatabaseRefused

BATCH = 5_000


class Table(NamedTuple):
    name: str
    count: str
    first: str  # the first batch
    after: str  # the batch after a key ($1.. the last row's key, then the limit)
    key: int  # how many leading columns form the key
    insert: str


TABLES = (
    Table(
        "guild_settings",
        "SELECT COUNT(*) FROM guild_settings",
        "SELECT guild_id, name, value FROM guild_settings ORDER BY guild_id, name LIMIT $1",
        "SELECT guild_id, name, value FROM guild_settings WHERE (guild_id, name) > ($1, $2) "
        "ORDER BY guild_id, name LIMIT $3",
        2,
        "INSERT INTO guild_settings (guild_id, name, value) VALUES ($1, $2, $3)",
    ),
    Table(
        "members",
        "SELECT COUNT(*) FROM members",
        "SELECT guild_id, user_id, xp, name, first_seen FROM members ORDER BY guild_id, user_id LIMIT $1",
        "SELECT guild_id, user_id, xp, name, first_seen FROM members WHERE (guild_id, user_id) > ($1, $2) "
        "ORDER BY guild_id, user_id LIMIT $3",
        2,
        "INSERT INTO members (guild_id, user_id, xp, name, first_seen) VALUES ($1, $2, $3, $4, $5)",
    ),
    Table(
        "wallets",
        "SELECT COUNT(*) FROM wallets",
        "SELECT guild_id, user_id, coins, last_daily, name FROM wallets ORDER BY guild_id, user_id LIMIT $1",
        "SELECT guild_id, user_id, coins, last_daily, name FROM wallets WHERE (guild_id, user_id) > ($1, $2) "
        "ORDER BY guild_id, user_id LIMIT $3",
        2,
        "INSERT INTO wallets (guild_id, user_id, coins, last_daily, name) VALUES ($1, $2, $3, $4, $5)",
    ),
    Table(
        "ledger",
        "SELECT COUNT(*) FROM ledger",
        "SELECT id, guild_id, from_id, to_id, amount, kind, actor_id, reason, created_at FROM ledger "
        "ORDER BY id LIMIT $1",
        "SELECT id, guild_id, from_id, to_id, amount, kind, actor_id, reason, created_at FROM ledger "
        "WHERE id > $1 ORDER BY id LIMIT $2",
        1,
        "INSERT INTO ledger (id, guild_id, from_id, to_id, amount, kind, actor_id, reason, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    ),
    Table(
        "cases",
        "SELECT COUNT(*) FROM cases",
        "SELECT guild_id, number, action, target_id, target_name, moderator_id, reason, created_at FROM cases "
        "ORDER BY guild_id, number LIMIT $1",
        "SELECT guild_id, number, action, target_id, target_name, moderator_id, reason, created_at FROM cases "
        "WHERE (guild_id, number) > ($1, $2) ORDER BY guild_id, number LIMIT $3",
        2,
        "INSERT INTO cases (guild_id, number, action, target_id, target_name, moderator_id, reason, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    ),
    Table(
        "reward_syncs",
        "SELECT COUNT(*) FROM reward_syncs",
        "SELECT guild_id, channel_id, message_id, started_by, after_user, done, changed, failed, started_at "
        "FROM reward_syncs ORDER BY guild_id LIMIT $1",
        "SELECT guild_id, channel_id, message_id, started_by, after_user, done, changed, failed, started_at "
        "FROM reward_syncs WHERE guild_id > $1 ORDER BY guild_id LIMIT $2",
        1,
        "INSERT INTO reward_syncs (guild_id, channel_id, message_id, started_by, after_user, done, changed, failed, "
        "started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    ),
    Table(
        "xp_audit",
        "SELECT COUNT(*) FROM xp_audit",
        "SELECT guild_id, number, user_id, actor_id, kind, xp_before, xp_after, reason, created_at, undone_by "
        "FROM xp_audit ORDER BY guild_id, number LIMIT $1",
        "SELECT guild_id, number, user_id, actor_id, kind, xp_before, xp_after, reason, created_at, undone_by "
        "FROM xp_audit WHERE (guild_id, number) > ($1, $2) ORDER BY guild_id, number LIMIT $3",
        2,
        "INSERT INTO xp_audit (guild_id, number, user_id, actor_id, kind, xp_before, xp_after, reason, created_at, "
        "undone_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    ),
)

# A case's earlier reasons keep their order, which lives in the row's position: rowid or id.
CASE_REASONS = {
    "sqlite": (
        "SELECT rowid, guild_id, number, reason, moderator_id, replaced_at FROM case_reasons "
        "WHERE rowid > $1 ORDER BY rowid LIMIT $2"
    ),
    "postgres": (
        "SELECT id, guild_id, number, reason, moderator_id, replaced_at FROM case_reasons "
        "WHERE id > $1 ORDER BY id LIMIT $2"
    ),
}
INSERT_CASE_REASON = (
    "INSERT INTO case_reasons (guild_id, number, reason, moderator_id, replaced_at) VALUES ($1, $2, $3, $4, $5)"
)

# What verification compares, source against target.
CHECKS = {
    "XP per guild": "SELECT guild_id, CAST(SUM(xp) AS BIGINT) FROM members GROUP BY guild_id ORDER BY guild_id",
    "coins per guild": "SELECT guild_id, CAST(SUM(coins) AS BIGINT) FROM wallets GROUP BY guild_id ORDER BY guild_id",
    "ledger sums": (
        "SELECT guild_id, kind, COUNT(*), CAST(SUM(amount) AS BIGINT) FROM ledger GROUP BY guild_id, kind "
        "ORDER BY guild_id, kind"
    ),
}

Progress = Callable[[str, int, int, float], None]  # table, rows copied, rows in all, seconds so far


class CopyFailed(Exception):
    """The copy did not verify, or the target was not empty; the target was left empty."""


COUNT_CASE_REASONS = "SELECT COUNT(*) FROM case_reasons"


async def counts(reader) -> dict[str, int]:
    """Rows per table, read through ``reader`` (a store or a connection)."""
    found = {table.name: await reader.fetchval(table.count) for table in TABLES}
    found["case_reasons"] = await reader.fetchval(COUNT_CASE_REASONS)
    return found


async def copy_everything(source, target, progress: Progress) -> list[str]:
    """Copy every row of ``source`` into the empty ``target``; the verification's lines.

    Raises CopyFailed (target left empty) when the target holds data or the
    copy does not verify.
    """
    if any((await counts(target._store)).values()):
        raise CopyFailed("the target already holds Tally data; copy-data only fills an empty database")
    expected = await counts(source._store)

    async def fill(conn) -> list[str]:
        for table in TABLES:
            await _copy(
                source,
                conn,
                table.name,
                expected[table.name],
                table.key,
                table.first,
                table.after,
                table.insert,
                progress,
            )
        await _copy_reasons(source, conn, expected["case_reasons"], progress)
        if conn.dialect == "postgres":  # new ledger rows continue after the copied IDs
            await conn.fetchval(
                "SELECT setval(pg_get_serial_sequence('ledger', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM ledger"
            )
        return await _verify(source, conn, expected)

    return await target._store.write(fill)


async def _copy(source, conn, name, total, key, first, after, insert, progress) -> None:
    started, done = time.monotonic(), 0
    rows = await source._store.fetch(first, BATCH)
    while rows:
        await conn.executemany(insert, [tuple(row) for row in rows])
        done += len(rows)
        progress(name, done, total, time.monotonic() - started)
        rows = await source._store.fetch(after, *tuple(rows[-1])[:key], BATCH)
    if not done:
        progress(name, 0, 0, time.monotonic() - started)


async def _copy_reasons(source, conn, total, progress) -> None:
    started, done, last = time.monotonic(), 0, 0
    while rows := await source._store.fetch(CASE_REASONS[source.dialect], last, BATCH):
        await conn.executemany(INSERT_CASE_REASON, [tuple(row)[1:] for row in rows])
        done += len(rows)
        last = rows[-1][0]
        progress("case_reasons", done, total, time.monotonic() - started)
    if not done:
        progress("case_reasons", 0, 0, time.monotonic() - started)


async def _verify(source, conn, expected: dict[str, int]) -> list[str]:
    lines = []
    copied_counts = await counts(conn)
    for table, count in expected.items():
        copied = copied_counts[table]
        if copied != count:
            raise CopyFailed(f"{table}: {count:,} rows in the source but {copied:,} in the target")
        lines.append(f"{table}: {count:,} rows, same in both")
    for what, query in CHECKS.items():
        theirs = [tuple(row) for row in await source._store.fetch(query)]
        ours = [tuple(row) for row in await conn.fetch(query)]
        if theirs != ours:
            raise CopyFailed(f"{what} differ between source and target")
        lines.append(f"{what}: {len(theirs):,} totals, same in both")
    return lines


async def copy_data(open_database: Callable, source: str | Path, to: str, out: TextIO) -> int:
    """``python bot.py copy-data --to TARGET``: the exit code (0 copied and verified, 2 refused, 1 failed).

    ``open_database`` is ``db.Database.open`` (passed in: the facade is built from this package).
    """

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    if isinstance(to, str) and not postgres.is_url(to) and ("://" in to or to.lower().startswith("postgres")):
        say(f"tally copy-data: --to {to!r} looks like a PostgreSQL URL but is not one: write postgresql://...")
        return 2
    held = []  # the SQLite one-process locks: no bot may start on either file while the copy runs
    source_db = target_db = None
    try:
        for end in (source, to):
            if isinstance(end, Path) or not postgres.is_url(end):
                if end is source and not Path(end).exists():
                    say(f"tally copy-data: there is no database at {end} to copy (check DATABASE_PATH)")
                    return 2
                held.append(sqlite.hold_exclusive(Path(end)))
        source_db = await open_database(source, upgrade=False)
        if source_db.dialect == "postgres" and not await source_db._store.keep_bots_out():
            say("tally copy-data: a Tally bot is running on the source database; stop every Tally process first")
            return 2
        target_db = await open_database(to)
        if target_db.dialect == "postgres" and not await target_db._store.keep_bots_out():
            say("tally copy-data: a Tally bot is running on the target database; stop it first")
            return 2
        say(f"copying from the {source_db.description} to the {target_db.description}")
        started = time.monotonic()
        lines = await copy_everything(source_db, target_db, progress_bar(out))
    except DatabaseRefused as exc:
        say(f"tally copy-data: {exc}")
        return 2
    except CopyFailed as exc:
        say(f"tally copy-data: {exc}; the target was left empty")
        return 2 if "already holds" in str(exc) else 1
    except Exception as exc:  # a row the target will not take, a server gone: the transaction rolled back
        say(
            f"tally copy-data: the copy failed ({type(exc).__name__}: {str(exc)[:300]}); "
            "the target was left empty and the source untouched"
        )
        return 1
    finally:
        for db in (source_db, target_db):
            if db is not None:
                await db.close()
        for fd in held:
            os.close(fd)
    for line in lines:
        say(f"  verified {line}")
    say(f"copy verified: every table, XP total, coin total and ledger sum matches ({time.monotonic() - started:.1f} s)")
    return 0


def progress_bar(out: TextIO) -> Progress:
    """One line per table, redrawn in place on a terminal: rows, percent, rows/s."""
    live = out.isatty()

    def show(table: str, done: int, total: int, seconds: float) -> None:
        share = done / total if total else 1.0
        bar = "#" * int(share * 20)
        rate = done / seconds if seconds > 0 else 0.0
        line = f"{table:<16} [{bar:<20}] {done:>11,}/{total:,} rows {share:4.0%} {rate:>10,.0f} rows/s"
        if live:
            print("\r" + line, end="\n" if done >= total else "", file=out, flush=True)
        elif done >= total:
            print(line, file=out, flush=True)

    return show
