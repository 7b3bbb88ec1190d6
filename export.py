"""``python bot.py export``: one server's data, or every server's, as one JSON document or CSV files.

The export reads one consistent moment of the database (SQLite: a read-only
connection in one read transaction; PostgreSQL: a read-only REPEATABLE READ
transaction), so it is safe while Tally runs, and it streams: members and
ledger rows are read in pages of PAGE rows and written as they come, so a
server of a million members exports in bounded memory.

The JSON document (``"format": "tally-export"``, ``"version": 1``) is
described in the README ("Your data: the export format"). Snowflake IDs are
strings, as in Discord's own API (they do not fit a JSON reader's doubles);
counts and timestamps are numbers. The document holds no time of its own, so
exporting the same data twice gives the same bytes.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TextIO

import aiosqlite
import asyncpg

import levels
from server_settings import SETTINGS
from storage import postgres
from storage.copy import progress_bar
from storage.sqlite import _numbered

FORMAT, VERSION = "tally-export", 1
PAGE = 10_000

GUILDS = (
    "SELECT guild_id FROM members UNION SELECT guild_id FROM wallets UNION SELECT guild_id FROM guild_settings "
    "UNION SELECT guild_id FROM cases ORDER BY 1"
)
COUNT_MEMBERS = "SELECT COUNT(*) FROM members WHERE guild_id = $1"
GUILD_SETTINGS = "SELECT name, value FROM guild_settings WHERE guild_id = $1 ORDER BY name"
# Each table a guild at a time, in pages by its key (keyset: no OFFSET scans).
MEMBERS = (
    "SELECT user_id, xp, name, first_seen FROM members WHERE guild_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3"
)
WALLETS = (
    "SELECT user_id, coins, last_daily, name FROM wallets WHERE guild_id = $1 AND user_id > $2 "
    "ORDER BY user_id LIMIT $3"
)
LEDGER = (
    "SELECT id, from_id, to_id, amount, kind, actor_id, reason, created_at FROM ledger "
    "WHERE guild_id = $1 AND id > $2 ORDER BY id LIMIT $3"
)
CASES = (
    "SELECT number, action, target_id, target_name, moderator_id, reason, created_at FROM cases "
    "WHERE guild_id = $1 AND number > $2 ORDER BY number LIMIT $3"
)
# A case's earlier reasons, in the order they were replaced (SQLite's rowid, PostgreSQL's id).
CASE_REASONS = {
    "sqlite": "SELECT number, reason, moderator_id, replaced_at FROM case_reasons WHERE guild_id = $1 "
    "AND number = $2 ORDER BY rowid",
    "postgres": "SELECT number, reason, moderator_id, replaced_at FROM case_reasons WHERE guild_id = $1 "
    "AND number = $2 ORDER BY id",
}


class ExportFailed(Exception):
    """One line for the owner (exit code 2)."""


class Snapshot:
    """One consistent, read-only moment of the database: ``fetch`` with ``$1`` placeholders on either backend."""

    def __init__(self, dialect: str, fetch: Callable[..., Any]) -> None:
        self.dialect = dialect
        self.fetch = fetch


@contextlib.asynccontextmanager
async def snapshot(target: Path | str) -> AsyncIterator[Snapshot]:
    """Open ``target`` read-only in one read transaction; ExportFailed when there is nothing to read."""
    if isinstance(target, str) and postgres.is_url(target):
        try:
            conn = await asyncpg.connect(target, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ExportFailed(f"cannot reach {postgres.describe(target)} ({type(exc).__name__})") from exc
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):

                async def fetch_postgres(query: str, *args: Any) -> list:
                    return await conn.fetch(query, *args)

                yield Snapshot("postgres", fetch_postgres)
        finally:
            await conn.close()
        return
    path = Path(target)
    if not path.is_file():
        raise ExportFailed(f"there is no database at {path} (check DATABASE_PATH)")
    async with aiosqlite.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
        await conn.execute("BEGIN")  # one read transaction: every page sees the same moment

        async def fetch_sqlite(query: str, *args: Any) -> list:
            return list(await conn.execute_fetchall(_numbered(query), args))

        yield Snapshot("sqlite", fetch_sqlite)


async def export(
    target: Path | str, guild_id: int | None, fmt: str, out: Path | None, err: TextIO, default_curve: str = "linear"
) -> int:
    """Write the export; the exit code (0, or 2 with one line on ``err``).

    ``default_curve`` is the owner's LEVEL_CURVE, for servers that set none.

    It is written under a temporary name (a file, or a folder for CSV) and
    takes its own only once complete: a failed export leaves nothing that
    looks like one.
    """
    partial = None
    try:
        async with snapshot(target) as db:
            guilds = [row[0] for row in await db.fetch(GUILDS)] if guild_id is None else [guild_id]
            if guild_id is not None and not await _known(db, guild_id):
                raise ExportFailed(f"the database holds nothing for server {guild_id}")
            out = out or Path(f"tally-export-{guild_id or 'all'}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
            if fmt == "json" and out.suffix != ".json":
                out = out.with_name(out.name + ".json")
            partial = out.with_name(f"{out.name}.{os.getpid()}.partial")
            if fmt == "json":
                with open(partial, "w", encoding="utf-8", newline="\n") as file:
                    await write_json(db, guilds, file, progress_bar(err), default_curve)
            else:
                await write_csv(db, guilds, partial, progress_bar(err), default_curve)
            if fmt == "csv" and out.is_dir() and not any(out.iterdir()):
                out.rmdir()  # an empty folder named as the output may be replaced
            partial.replace(out)
            partial = None
    except ExportFailed as failed:
        print(f"tally export: {failed}", file=err)
        return 2
    except OSError as exc:
        print(f"tally export: cannot write {out} ({exc.strerror or exc})", file=err)
        return 2
    except (sqlite3.DatabaseError, asyncpg.PostgresError) as exc:
        print(f"tally export: cannot read the database ({type(exc).__name__}: {str(exc)[:200]})", file=err)
        return 2
    finally:
        if partial is not None and partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        elif partial is not None:
            partial.unlink(missing_ok=True)
    print(f"exported {len(guilds):,} server{'' if len(guilds) == 1 else 's'} to {out}", file=err)
    return 0


async def _known(db: Snapshot, guild_id: int) -> bool:
    for table in ("members", "wallets", "guild_settings", "cases"):
        if await db.fetch(KNOWN[table], guild_id):
            return True
    return False


KNOWN = {
    "members": "SELECT 1 FROM members WHERE guild_id = $1 LIMIT 1",
    "wallets": "SELECT 1 FROM wallets WHERE guild_id = $1 LIMIT 1",
    "guild_settings": "SELECT 1 FROM guild_settings WHERE guild_id = $1 LIMIT 1",
    "cases": "SELECT 1 FROM cases WHERE guild_id = $1 LIMIT 1",
}


# -- reading a guild, as records ----------------------------------------------------------


async def _pages(db: Snapshot, query: str, guild_id: int) -> AsyncIterator[list]:
    """Every row of a guild's table, a page at a time, by its key (the first column)."""
    after = 0
    while rows := await db.fetch(query, guild_id, after, PAGE):
        yield rows
        after = rows[-1][0]


async def _settings(db: Snapshot, guild_id: int) -> dict[str, str]:
    return {row[0]: row[1] for row in await db.fetch(GUILD_SETTINGS, guild_id)}


def _rewards(settings: dict[str, str]) -> list[dict]:
    """The stored ``rewards`` setting, read as the bot reads it (unreadable: none, as the bot would have it)."""
    try:
        rewards = SETTINGS["rewards"].read(settings.get("rewards", ""))["rewards"]
    except ValueError:
        return []
    return [{"level": level, "role_id": str(role_id)} for level, role_id in rewards]


def _member(row, curve: levels.Curve) -> dict:
    user_id, xp, name, first_seen = row
    return {"user_id": str(user_id), "xp": xp, "level": curve.level_for(xp), "name": name, "first_seen": first_seen}


def _wallet(row) -> dict:
    user_id, coins, last_daily, name = row
    return {"user_id": str(user_id), "coins": coins, "last_daily": last_daily, "name": name}


def _movement(row) -> dict:
    _, from_id, to_id, amount, kind, actor_id, reason, created_at = row
    return {
        "from_id": _id(from_id),
        "to_id": _id(to_id),
        "amount": amount,
        "kind": kind,
        "actor_id": str(actor_id),
        "reason": reason,
        "created_at": created_at,
    }


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


async def _case(db: Snapshot, guild_id: int, row) -> dict:
    number, action, target_id, target_name, moderator_id, reason, created_at = row
    history = await db.fetch(CASE_REASONS[db.dialect], guild_id, number)
    return {
        "number": number,
        "action": action,
        "target_id": str(target_id),
        "target_name": target_name,
        "moderator_id": str(moderator_id),
        "reason": reason,
        "created_at": created_at,
        "earlier_reasons": [{"reason": old, "moderator_id": str(by), "replaced_at": at} for _, old, by, at in history],
    }


def _curve(settings: dict[str, str], default: str) -> levels.Curve:
    """The server's level curve: its setting, else the owner's default (LEVEL_CURVE)."""
    name = settings.get("curve") or default
    return levels.curve(name if name in levels.CURVE_NAMES else default)


# -- JSON ---------------------------------------------------------------------------------


async def write_json(db: Snapshot, guilds: list[int], file: TextIO, progress, default_curve: str) -> None:
    """The whole document, streamed: one member, wallet, movement or case per line."""
    file.write(f'{{"format": "{FORMAT}", "version": {VERSION}, "guilds": [')
    for n, guild_id in enumerate(guilds):
        settings = await _settings(db, guild_id)
        curve = _curve(settings, default_curve)
        head = {
            "guild_id": str(guild_id),
            "curve": curve.name,
            "settings": settings,
            "role_rewards": _rewards(settings),
        }
        file.write(("," if n else "") + "\n" + json.dumps(head, ensure_ascii=False)[:-1])
        members = _rows(db, MEMBERS, guild_id, await _members_progress(db, guild_id, progress))
        await _json_list(file, "members", (_member(row, curve) async for row in members))
        await _json_list(file, "wallets", (_wallet(row) async for row in _rows(db, WALLETS, guild_id)))
        await _json_list(file, "ledger", (_movement(row) async for row in _rows(db, LEDGER, guild_id)))
        await _json_list(file, "cases", (await _case(db, guild_id, row) async for row in _rows(db, CASES, guild_id)))
        file.write("}")
    file.write("\n]}\n")


async def _rows(db: Snapshot, query: str, guild_id: int, on_page: Callable[[int], None] | None = None) -> AsyncIterator:
    async for page in _pages(db, query, guild_id):
        for row in page:
            yield row
        if on_page is not None:
            on_page(len(page))


async def _members_progress(db: Snapshot, guild_id: int, progress) -> Callable[[int], None]:
    """A page counter that draws the progress bar of a guild's members (a line when it has none)."""
    total = (await db.fetch(COUNT_MEMBERS, guild_id))[0][0]
    started, done = time.monotonic(), 0
    if not total:
        progress(f"server {guild_id}", 0, 0, 0.0)

    def on_page(rows: int) -> None:
        nonlocal done
        done += rows
        progress(f"server {guild_id}", done, total, time.monotonic() - started)

    return on_page


async def _json_list(file: TextIO, key: str, items: AsyncIterator[dict]) -> None:
    file.write(f', "{key}": [')
    first = True
    async for item in items:
        file.write(("\n" if first else ",\n") + json.dumps(item, ensure_ascii=False))
        first = False
    file.write("]" if first else "\n]")


# -- CSV ----------------------------------------------------------------------------------

CSV_TABLES = {
    "members": ["guild_id", "user_id", "xp", "level", "name", "first_seen"],
    "wallets": ["guild_id", "user_id", "coins", "last_daily", "name"],
    "ledger": ["guild_id", "from_id", "to_id", "amount", "kind", "actor_id", "reason", "created_at"],
    "cases": ["guild_id", "number", "action", "target_id", "target_name", "moderator_id", "reason", "created_at"],
    "case_reasons": ["guild_id", "number", "reason", "moderator_id", "replaced_at"],
    "settings": ["guild_id", "name", "value"],
    "role_rewards": ["guild_id", "level", "role_id"],
}


async def write_csv(db: Snapshot, guilds: list[int], folder: Path, progress, default_curve: str) -> None:
    """One file per table in ``folder``, every guild's rows with their guild_id."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: open(folder / f"{name}.csv", "w", encoding="utf-8", newline="") for name in CSV_TABLES}  # noqa: SIM115
    try:
        writers = {name: csv.writer(file) for name, file in files.items()}
        for name, columns in CSV_TABLES.items():
            writers[name].writerow(columns)
        for guild_id in guilds:
            settings = await _settings(db, guild_id)
            curve = _curve(settings, default_curve)
            for name, value in settings.items():
                writers["settings"].writerow([guild_id, name, value])
            for reward in _rewards(settings):
                writers["role_rewards"].writerow([guild_id, reward["level"], reward["role_id"]])
            async for row in _rows(db, MEMBERS, guild_id, await _members_progress(db, guild_id, progress)):
                writers["members"].writerow([guild_id, *_member(row, curve).values()])
            async for row in _rows(db, WALLETS, guild_id):
                writers["wallets"].writerow([guild_id, *_wallet(row).values()])
            async for row in _rows(db, LEDGER, guild_id):
                writers["ledger"].writerow([guild_id, *_movement(row).values()])
            async for row in _rows(db, CASES, guild_id):
                case = await _case(db, guild_id, row)
                earlier = case.pop("earlier_reasons")
                writers["cases"].writerow([guild_id, *case.values()])
                for old in earlier:
                    writers["case_reasons"].writerow([guild_id, case["number"], *old.values()])
    finally:
        for file in files.values():
            file.close()
