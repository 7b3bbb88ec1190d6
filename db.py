"""The database: the only module that speaks SQL.

One long-lived aiosqlite connection, opened at start-up and closed at shutdown.
Every value reaches SQLite through a placeholder; every write goes through
:meth:`Database.transaction`, which holds one lock, so writes never interleave.

At start-up :meth:`Database.open` makes sure the file is a Tally database it
understands: a new file gets ``schema.sql``; an older one is upgraded by the
numbered migrations below (after a backup copy); anything else is refused
with a :class:`DatabaseRefused` whose message says what to do, and the file
is left untouched. Refused too, before anything is written: a read-only file,
a folder SQLite cannot create its journal files in, a file with damaged pages
(``PRAGMA quick_check``), and, for the bot, a file another Tally process is
using (an exclusive lock on ``<file>.lock`` that the kernel releases when the
process ends, however it ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import logging
import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NamedTuple

import aiosqlite

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).with_name("schema.sql")
SCHEMA_VERSION = 2
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def bundled_migrations() -> dict[int, str]:
    """The numbered migrations: ``{n: script}`` upgrades a version-n database to n + 1.

    ``migrations/NNNN_name.sql`` produces version NNNN. Each script is one
    transaction that ends by setting the new user_version, so an upgrade and
    its version bump land together or not at all.
    """
    scripts = {}
    for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        scripts[int(path.name[:4]) - 1] = path.read_text(encoding="utf-8")
    return scripts


class DatabaseRefused(Exception):
    """The database file cannot be used; the message says why and what to do."""


class DatabaseBusy(Exception):
    """Another program held the database's write lock past the busy timeout; nothing was changed."""


class XpGain(NamedTuple):
    """XP a member earned since the last flush, and the level-up coins it brought."""

    guild_id: int
    user_id: int
    xp: int
    name: str
    seen_at: int  # Unix seconds of the first message behind this gain
    coins: int = 0  # level-up coins, written with the XP that earned them


class InsufficientCoins(Exception):
    """A debit larger than the balance: nothing was changed."""

    def __init__(self, balance: int) -> None:
        super().__init__(balance)
        self.balance = balance


class Daily(NamedTuple):
    claimed: bool
    balance: int
    next_claim_at: int  # Unix seconds


class Movement(NamedTuple):
    """One ledger row."""

    id: int
    from_id: int | None
    to_id: int | None
    amount: int
    kind: str
    actor_id: int
    reason: str | None
    created_at: int


class Case(NamedTuple):
    number: int
    action: str
    target_id: int
    target_name: str
    moderator_id: int
    reason: str | None
    created_at: int


class OldReason(NamedTuple):
    reason: str | None
    moderator_id: int
    replaced_at: int


class SchemaReport(NamedTuple):
    tables: dict[str, set[str]]  # table -> column names
    indexes: set[str]


async def _schema_report(conn: aiosqlite.Connection) -> SchemaReport:
    tables: dict[str, set[str]] = {}
    indexes: set[str] = set()
    async with conn.execute(
        "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%'"
    ) as cursor:
        objects = await cursor.fetchall()
    for kind, name in objects:
        if kind == "index":
            indexes.add(name)
            continue
        async with conn.execute("SELECT name FROM pragma_table_info(?)", (name,)) as cursor:
            tables[name] = {row[0] for row in await cursor.fetchall()}
    return SchemaReport(tables, indexes)


async def _expected_schema(schema_sql: str) -> SchemaReport:
    """What schema.sql creates, read back from a scratch in-memory database."""
    async with aiosqlite.connect(":memory:", isolation_level=None) as scratch:
        await scratch.executescript(schema_sql)
        return await _schema_report(scratch)


def _missing(expected: SchemaReport, found: SchemaReport) -> list[str]:
    missing = []
    for table, columns in sorted(expected.tables.items()):
        if table not in found.tables:
            missing.append(f"table {table}")
            continue
        missing.extend(f"column {table}.{column}" for column in sorted(columns - found.tables[table]))
    missing.extend(f"index {index}" for index in sorted(expected.indexes - found.indexes))
    return missing


def _writable(path: Path) -> bool:
    """Whether this process may write ``path``, by its permissions.

    ``os.access`` answers for ordinary users; root may write anything, so for
    root a file or folder with no write bit at all counts as read-only too:
    whoever took the bits away meant it.
    """
    if not os.access(path, os.W_OK):
        return False
    return os.geteuid() != 0 or bool(path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _check_writable(path: Path) -> None:
    """Refuse a read-only file, or a folder SQLite cannot create its journal files in."""
    folder = path.parent
    if not _writable(folder):
        raise DatabaseRefused(
            f"the folder {folder} is not writable: SQLite must create its journal files ({path.name}-wal, "
            f"{path.name}-shm) beside {path.name}; make the folder writable by the user running Tally"
        )
    if path.exists() and not _writable(path):
        raise DatabaseRefused(
            f"{path} is read-only: Tally must write to it; make it writable by the user running Tally "
            f"(for example chmod u+w {path})"
        )


def backups_of(path: Path) -> list[Path]:
    """The automatic backups of ``path`` (made before each upgrade), newest first."""
    return sorted(path.parent.glob(f"{path.name}.v*-*.bak"), key=lambda p: p.stat().st_mtime, reverse=True)


def _damaged(path: Path, problem: str) -> DatabaseRefused:
    problem = " ".join(problem.replace("*** in database main ***", "").split())[:300]  # one line
    found = backups_of(path)
    where = f"the newest is {found[0]}" if found else f"none found in {path.parent}"
    return DatabaseRefused(
        f"{path} is damaged ({problem}); restore a backup (Tally's automatic backups are "
        f"{path.parent / (path.name + '.v*.bak')}: {where}) or move the file away to start afresh"
    )


def _hold_exclusive(path: Path) -> int:
    """Take the one-process lock on ``path``; returns the lock file's descriptor.

    ``flock`` on a file beside the database, never on the database itself
    (closing any descriptor of the database would drop SQLite's own locks).
    The kernel releases it when the process ends, even by SIGKILL.
    """
    path = path.resolve()  # one lock file per real file, whichever path or link names it
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DatabaseRefused(f"cannot create the lock file {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise DatabaseRefused(
            f"another Tally is using this database{pid}: {path}; stop it first, or give this one its own DATABASE_PATH"
        ) from None
    except OSError as exc:  # a file system without locks (some network mounts)
        os.close(fd)
        raise DatabaseRefused(f"cannot lock {lock_path} ({exc.strerror}): keep the database on a local disk") from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # the pid is only a courtesy for the refusal line; the lock is what counts
    return fd


class Database:
    """Tally's storage. Build it with ``await Database.open(path)``."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, lock_fd: int | None = None) -> None:
        self._conn = conn
        self.path = path
        self._write_lock = asyncio.Lock()
        self._lock_fd = lock_fd

    # -- opening, checking, closing ------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        schema_path: Path = SCHEMA_PATH,
        schema_version: int = SCHEMA_VERSION,
        migrations: dict[int, str] | None = None,
        busy_timeout: float = 5.0,
        exclusive: bool = False,
    ) -> Database:
        """Open ``path``, creating, upgrading or refusing it as described above.

        ``exclusive``: refuse when another process holds the file the same way
        (the bot opens it so; tools and tests may open a second connection).
        The other keyword arguments exist so tests can check the upgrade
        machinery with a schema of their own.
        """
        path = Path(path)
        migrations = bundled_migrations() if migrations is None else migrations
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseRefused(f"cannot create the folder for {path}: {exc.strerror}") from exc
        _check_writable(path)
        lock_fd = _hold_exclusive(path) if exclusive else None
        try:
            try:
                # timeout: how long a write waits for another writer before "database is locked"
                conn = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
            except sqlite3.Error as exc:
                raise DatabaseRefused(f"cannot open {path}: {exc}") from exc
            conn.row_factory = aiosqlite.Row
            try:
                await cls._prepare(conn, path, schema_path.read_text(encoding="utf-8"), schema_version, migrations)
            except BaseException as exc:
                await conn.close()
                if isinstance(exc, sqlite3.OperationalError) and (refused := _refusal(path, exc)):
                    raise refused from exc
                raise
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        db = cls(conn, path, lock_fd)
        if exclusive:  # only the one process that owns the file adds what an earlier one could not
            await db._add_unsaved()
        return db

    @staticmethod
    async def _prepare(
        conn: aiosqlite.Connection,
        path: Path,
        schema_sql: str,
        schema_version: int,
        migrations: dict[int, str],
    ) -> None:
        # Read-only checks first: a refused file must be left exactly as it was.
        try:
            async with conn.execute("PRAGMA user_version") as cursor:
                version = (await cursor.fetchone())[0]
            found = await _schema_report(conn)
            async with conn.execute("PRAGMA quick_check(5)") as cursor:  # damaged pages, before any write
                problems = [row[0] for row in await cursor.fetchall()]
        except sqlite3.OperationalError:
            raise  # locked or read-only: open() explains
        except sqlite3.DatabaseError as exc:
            if "malformed" in str(exc):
                raise _damaged(path, str(exc)) from exc
            raise DatabaseRefused(
                f"{path} is not a SQLite database ({exc}); point DATABASE_PATH at Tally's database "
                "or at a new file name"
            ) from exc
        if problems != ["ok"]:
            raise _damaged(path, "; ".join(problems))

        if version > schema_version:
            raise DatabaseRefused(
                f"{path} was written by a newer Tally (schema version {version}; this Tally knows up to "
                f"{schema_version}); upgrade Tally, or restore a backup made by this version"
            )
        if version == 0 and (found.tables or found.indexes):
            raise DatabaseRefused(
                f"{path} holds tables Tally did not create ({', '.join(sorted(found.tables)) or 'indexes'}); "
                "point DATABASE_PATH at a new file name"
            )
        missing_steps = [n for n in range(version, schema_version) if version and n not in migrations]
        if missing_steps:
            raise DatabaseRefused(
                f"{path} has schema version {version} and this Tally has no upgrade from version "
                f"{missing_steps[0]}; restore a backup or use a new file"
            )

        async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
            mode = (await cursor.fetchone())[0]
        if mode.lower() != "wal":
            log.warning("SQLite kept journal mode %s for %s (WAL unsupported here)", mode, path)
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")

        if version == 0:
            log.info("creating a new database at %s (schema version %s)", path, schema_version)
            await _run_script(conn, schema_sql)
        elif version < schema_version:
            backup = await _backup(conn, path, version)
            log.info("upgrading %s from schema version %s to %s; backup at %s", path, version, schema_version, backup)
            for step in range(version, schema_version):
                await _run_script(conn, migrations[step])
                async with conn.execute("PRAGMA user_version") as cursor:
                    reached = (await cursor.fetchone())[0]
                if reached != step + 1:
                    raise DatabaseRefused(f"migration {step} left {path} at version {reached}, expected {step + 1}")

        async with conn.execute("PRAGMA user_version") as cursor:
            version = (await cursor.fetchone())[0]
        if version != schema_version:
            raise DatabaseRefused(f"{path} is at schema version {version}, expected {schema_version}")
        missing = _missing(await _expected_schema(schema_sql), await _schema_report(conn))
        if missing:
            raise DatabaseRefused(
                f"{path} claims schema version {version} but lacks {', '.join(missing)}; restore a backup"
            )

    async def wait_for_lock_at_most(self, seconds: float) -> None:
        """How long a write waits for another program's lock from now on (shutdown shortens it).

        PRAGMA takes no placeholders: the value is an integer computed here, never input.
        """
        await self._conn.execute(f"PRAGMA busy_timeout = {max(1, int(seconds * 1000))}")

    # -- XP a shutdown could not write ----------------------------------------------

    def unsaved_files(self) -> list[Path]:
        """Files of XP that shutdowns could not write, oldest first."""
        return sorted(self.path.parent.glob(f"{self.path.name}.unsaved-*.json"))

    def keep_unsaved(self, gains: list[XpGain]) -> Path:
        """Write gains the database would not take to a new file beside it; the next start adds them.

        A new file for every shutdown (never a merge with an earlier one, which
        might be unreadable), written whole and synced before it takes its name.
        """
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"{now % 1:.6f}"[1:]
        path = self.path.with_name(f"{self.path.name}.unsaved-{stamp}-{os.getpid()}.json")
        partial = path.with_name(path.name + ".partial")
        with open(partial, "w", encoding="utf-8") as file:
            json.dump([list(gain) for gain in gains], file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
        return path

    async def _add_unsaved(self) -> None:
        """Add the XP earlier shutdowns kept in files, each in one transaction, then remove the file.

        Never raises: a file that cannot be read or added is left in place and named in the log.
        """
        for path in self.unsaved_files():
            try:
                gains = _unsaved_gains(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as exc:
                log.error("cannot read %s (%s); it is left as it is: fix or remove it", path, exc)
                continue
            try:
                await self.add_xp(gains)
            except Exception:
                log.exception("could not add the XP kept in %s; it is kept for the next start", path)
                continue
            path.unlink()  # a crash right before this line would add the file again at the next start
            log.info("added the XP of %d members that a shutdown kept in %s", len(gains), path)

    async def close(self) -> None:
        async with self._write_lock:  # let a write in progress finish first
            await self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # another Tally may use the file from now on
            self._lock_fd = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time: BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error.

        Raises DatabaseBusy when another program holds the write lock longer
        than the busy timeout (a backup tool, say): then nothing was changed.
        A cancellation at any point (the statements still run in the
        database's thread) ends in a ROLLBACK queued behind them, so the
        connection never stays inside a transaction.
        """
        async with self._write_lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")  # waits up to the busy timeout for the lock
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    raise DatabaseBusy(str(exc)) from exc
                raise
            except BaseException:
                await self._roll_back()
                raise
            try:
                yield self._conn
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._roll_back()
                raise

    async def _roll_back(self) -> None:
        """ROLLBACK if a transaction is open once every queued statement has run."""
        with contextlib.suppress(sqlite3.OperationalError):  # "no transaction is active"
            await self._conn.execute("ROLLBACK")

    # -- guild settings --------------------------------------------------------

    async def prefixes(self) -> dict[int, str]:
        """Every guild's custom prefix (guilds on the default have no entry)."""
        rows = await self._conn.execute_fetchall("SELECT guild_id, prefix FROM guild_settings")
        return {row["guild_id"]: row["prefix"] for row in rows}

    async def set_prefix(self, guild_id: int, prefix: str) -> None:
        async with self.transaction() as conn:
            await conn.execute(
                "INSERT INTO guild_settings (guild_id, prefix) VALUES (?, ?) "
                "ON CONFLICT (guild_id) DO UPDATE SET prefix = excluded.prefix",
                (guild_id, prefix),
            )

    async def reset_prefix(self, guild_id: int) -> None:
        async with self.transaction() as conn:
            await conn.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))

    # -- XP --------------------------------------------------------------------

    async def add_xp(self, gains: Iterable[XpGain]) -> None:
        """Add every gain in one transaction, with one statement (two more for level-up coins).

        The upsert adds to what is stored rather than overwriting it, so two
        writers adding to the same member both count. The gains travel as one
        JSON array that SQLite unpacks itself: one round trip to the database
        thread however many members, which keeps a big flush off the event loop.
        Level-up coins land in the same transaction as the XP that earned them,
        each with its ledger row (the member is its actor: they earned it).
        """
        payload, with_coins = await asyncio.to_thread(_json_rows, gains)
        async with self.transaction() as conn:
            await conn.execute(
                "INSERT INTO members (guild_id, user_id, xp, name, first_seen) "
                "SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each(?) WHERE true "
                "ON CONFLICT (guild_id, user_id) DO UPDATE SET xp = members.xp + excluded.xp, name = excluded.name",
                (payload,),
            )
            if with_coins:
                await conn.execute(
                    "INSERT INTO wallets (guild_id, user_id, coins, name) "
                    "SELECT value ->> 0, value ->> 1, value ->> 5, value ->> 3 FROM json_each(?) "
                    "WHERE value ->> 5 > 0 "
                    "ON CONFLICT (guild_id, user_id) DO UPDATE SET coins = wallets.coins + excluded.coins, "
                    "name = excluded.name",
                    (payload,),
                )
                await conn.execute(
                    "INSERT INTO ledger (guild_id, from_id, to_id, amount, kind, actor_id, reason, created_at) "
                    "SELECT value ->> 0, NULL, value ->> 1, value ->> 5, 'level_up', value ->> 1, NULL, value ->> 4 "
                    "FROM json_each(?) WHERE value ->> 5 > 0",
                    (payload,),
                )

    async def guild_xp(self, guild_id: int) -> list[tuple[int, int]]:
        """Every ``(user_id, xp)`` in the guild, in no particular order."""
        rows = await self._conn.execute_fetchall("SELECT user_id, xp FROM members WHERE guild_id = ?", (guild_id,))
        return [(row[0], row[1]) for row in rows]

    async def member_xp(self, guild_id: int, user_id: int) -> int:
        """The XP stored for one member (0 when there is no row)."""
        rows = await self._conn.execute_fetchall(
            "SELECT xp FROM members WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return rows[0][0] if rows else 0

    async def names(self, guild_id: int, user_ids: Iterable[int]) -> dict[int, str]:
        """Last known names of the given members (a JSON array keeps the query fixed)."""
        rows = await self._conn.execute_fetchall(
            "SELECT user_id, name FROM members WHERE guild_id = ? AND user_id IN (SELECT value FROM json_each(?))",
            (guild_id, json.dumps(list(user_ids))),
        )
        return {row[0]: row[1] for row in rows}

    # -- coins -------------------------------------------------------------------
    # Every method that moves coins is one transaction that also writes the
    # ledger row, so the ledger always explains every balance. A debit only
    # happens if the balance covers it; CHECK (coins >= 0) is the backstop.

    async def balance(self, guild_id: int, user_id: int) -> int:
        return await self._balance_in(self._conn, guild_id, user_id)

    @staticmethod
    async def _credit(conn: aiosqlite.Connection, guild_id: int, user_id: int, amount: int, name: str) -> None:
        await conn.execute(
            "INSERT INTO wallets (guild_id, user_id, coins, name) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (guild_id, user_id) DO UPDATE SET coins = wallets.coins + excluded.coins, "
            "name = excluded.name",
            (guild_id, user_id, amount, name),
        )

    @staticmethod
    async def _debit(conn: aiosqlite.Connection, guild_id: int, user_id: int, amount: int) -> None:
        """Take ``amount`` only if the balance covers it; else raise InsufficientCoins."""
        cursor = await conn.execute(
            "UPDATE wallets SET coins = coins - ? WHERE guild_id = ? AND user_id = ? AND coins >= ?",
            (amount, guild_id, user_id, amount),
        )
        if cursor.rowcount != 1:
            raise InsufficientCoins(await Database._balance_in(conn, guild_id, user_id))

    @staticmethod
    async def _record(
        conn: aiosqlite.Connection,
        guild_id: int,
        from_id: int | None,
        to_id: int | None,
        amount: int,
        kind: str,
        actor_id: int,
        reason: str | None,
    ) -> None:
        await conn.execute(
            "INSERT INTO ledger (guild_id, from_id, to_id, amount, kind, actor_id, reason, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (guild_id, from_id, to_id, amount, kind, actor_id, reason, int(time.time())),
        )

    @staticmethod
    async def _balance_in(conn: aiosqlite.Connection, guild_id: int, user_id: int) -> int:
        rows = await conn.execute_fetchall(
            "SELECT coins FROM wallets WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return rows[0][0] if rows else 0

    async def transfer(
        self, guild_id: int, from_id: int, to_id: int, amount: int, *, from_name: str, to_name: str
    ) -> tuple[int, int]:
        """Move coins between two members; returns both new balances.

        Raises InsufficientCoins (changing nothing) when the sender cannot cover it.
        """
        if from_id == to_id or amount <= 0:
            raise ValueError("a transfer needs two members and a positive amount")
        async with self.transaction() as conn:
            await self._debit(conn, guild_id, from_id, amount)
            await conn.execute(
                "UPDATE wallets SET name = ? WHERE guild_id = ? AND user_id = ?", (from_name, guild_id, from_id)
            )
            await self._credit(conn, guild_id, to_id, amount, to_name)
            await self._record(conn, guild_id, from_id, to_id, amount, "transfer", from_id, None)
            return await self._balance_in(conn, guild_id, from_id), await self._balance_in(conn, guild_id, to_id)

    async def claim_daily(
        self, guild_id: int, user_id: int, name: str, amount: int, now: int, period: int = 86400
    ) -> Daily:
        """Claim the daily coins once per ``period`` seconds; the claim time is stored.

        The check and the credit are one statement (the upsert only updates a
        wallet whose last claim is old enough), so two claims at once, from
        two processes even, can never both pay.
        """
        async with self.transaction() as conn:
            paid = await conn.execute_fetchall(
                "INSERT INTO wallets (guild_id, user_id, coins, name, last_daily) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (guild_id, user_id) DO UPDATE SET coins = wallets.coins + excluded.coins, "
                "name = excluded.name, last_daily = excluded.last_daily "
                "WHERE wallets.last_daily IS NULL OR wallets.last_daily <= ? "
                "RETURNING coins",
                (guild_id, user_id, amount, name, now, now - period),
            )
            if paid:
                await self._record(conn, guild_id, None, user_id, amount, "daily", user_id, None)
                return Daily(True, paid[0][0], now + period)
            rows = await conn.execute_fetchall(
                "SELECT coins, last_daily FROM wallets WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
            return Daily(False, rows[0][0], rows[0][1] + period)

    async def grant(
        self, guild_id: int, user_id: int, name: str, amount: int, kind: str, actor_id: int, reason: str | None = None
    ) -> int:
        """Create coins for a member (daily, level-up, an admin's give); returns the new balance."""
        async with self.transaction() as conn:
            await self._credit(conn, guild_id, user_id, amount, name)
            await self._record(conn, guild_id, None, user_id, amount, kind, actor_id, reason)
            return await self._balance_in(conn, guild_id, user_id)

    async def take(
        self, guild_id: int, user_id: int, amount: int, actor_id: int, reason: str | None = None
    ) -> tuple[int, int]:
        """Remove up to ``amount`` coins, never below zero; returns (taken, new balance)."""
        async with self.transaction() as conn:
            taken = min(amount, await self._balance_in(conn, guild_id, user_id))
            if taken:
                await self._debit(conn, guild_id, user_id, taken)
                await self._record(conn, guild_id, user_id, None, taken, "take", actor_id, reason)
            return taken, await self._balance_in(conn, guild_id, user_id)

    async def set_balance(
        self, guild_id: int, user_id: int, name: str, amount: int, actor_id: int, reason: str | None = None
    ) -> int:
        """Set a balance; the ledger records the difference. Returns the old balance."""
        async with self.transaction() as conn:
            old = await self._balance_in(conn, guild_id, user_id)
            if amount > old:
                await self._credit(conn, guild_id, user_id, amount - old, name)
                await self._record(conn, guild_id, None, user_id, amount - old, "set", actor_id, reason)
            elif amount < old:
                await self._debit(conn, guild_id, user_id, old - amount)
                await self._record(conn, guild_id, user_id, None, old - amount, "set", actor_id, reason)
            return old

    async def movements(self, guild_id: int, user_id: int, limit: int = 10) -> list[Movement]:
        """A member's latest coin movements, newest first."""
        rows = await self._conn.execute_fetchall(
            "SELECT id, from_id, to_id, amount, kind, actor_id, reason, created_at FROM ledger "
            "WHERE guild_id = ? AND (from_id = ? OR to_id = ?) ORDER BY id DESC LIMIT ?",
            (guild_id, user_id, user_id, limit),
        )
        return [Movement(*row) for row in rows]

    async def richest(self, guild_id: int, offset: int, limit: int) -> list[tuple[int, int, str]]:
        """``(user_id, coins, last known name)`` by coins, ties to the lower user ID."""
        rows = await self._conn.execute_fetchall(
            "SELECT user_id, coins, name FROM wallets WHERE guild_id = ? AND coins > 0 "
            "ORDER BY coins DESC, user_id LIMIT ? OFFSET ?",
            (guild_id, limit, offset),
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def holders(self, guild_id: int) -> int:
        rows = await self._conn.execute_fetchall(
            "SELECT COUNT(*) FROM wallets WHERE guild_id = ? AND coins > 0", (guild_id,)
        )
        return rows[0][0]

    async def first_seen(self, guild_id: int, user_id: int) -> int | None:
        rows = await self._conn.execute_fetchall(
            "SELECT first_seen FROM members WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return rows[0][0] if rows else None

    # -- moderation cases ----------------------------------------------------------

    async def open_case(
        self, guild_id: int, action: str, target_id: int, target_name: str, moderator_id: int, reason: str | None
    ) -> Case:
        """Record a case under the guild's next case number.

        The number is chosen and taken by one statement; the primary key
        (guild_id, number) refuses a second writer that chose the same one.
        """
        created_at = int(time.time())
        async with self.transaction() as conn:
            rows = await conn.execute_fetchall(
                "INSERT INTO cases (guild_id, number, action, target_id, target_name, moderator_id, reason, created_at) "
                "SELECT ?, COALESCE(MAX(number), 0) + 1, ?, ?, ?, ?, ?, ? FROM cases WHERE guild_id = ? "
                "RETURNING number",
                (guild_id, action, target_id, target_name, moderator_id, reason, created_at, guild_id),
            )
        return Case(rows[0][0], action, target_id, target_name, moderator_id, reason, created_at)

    async def case(self, guild_id: int, number: int) -> Case | None:
        rows = await self._conn.execute_fetchall(
            "SELECT number, action, target_id, target_name, moderator_id, reason, created_at FROM cases "
            "WHERE guild_id = ? AND number = ?",
            (guild_id, number),
        )
        return Case(*rows[0]) if rows else None

    async def cases_of(self, guild_id: int, target_id: int, offset: int, limit: int) -> tuple[int, list[Case]]:
        """How many cases a member has, and one page of them, newest first."""
        count = await self._conn.execute_fetchall(
            "SELECT COUNT(*) FROM cases WHERE guild_id = ? AND target_id = ?", (guild_id, target_id)
        )
        rows = await self._conn.execute_fetchall(
            "SELECT number, action, target_id, target_name, moderator_id, reason, created_at FROM cases "
            "WHERE guild_id = ? AND target_id = ? ORDER BY number DESC LIMIT ? OFFSET ?",
            (guild_id, target_id, limit, offset),
        )
        return count[0][0], [Case(*row) for row in rows]

    async def correct_reason(self, guild_id: int, number: int, reason: str, moderator_id: int) -> Case | None:
        """Replace a case's reason, keeping the earlier one in its history."""
        async with self.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO case_reasons (guild_id, number, reason, moderator_id, replaced_at) "
                "SELECT guild_id, number, reason, ?, ? FROM cases WHERE guild_id = ? AND number = ?",
                (moderator_id, int(time.time()), guild_id, number),
            )
            if cursor.rowcount != 1:
                return None
            await conn.execute(
                "UPDATE cases SET reason = ? WHERE guild_id = ? AND number = ?", (reason, guild_id, number)
            )
        return await self.case(guild_id, number)

    async def reason_history(self, guild_id: int, number: int) -> list[OldReason]:
        """A case's earlier reasons, oldest first."""
        rows = await self._conn.execute_fetchall(
            "SELECT reason, moderator_id, replaced_at FROM case_reasons WHERE guild_id = ? AND number = ? "
            "ORDER BY rowid",
            (guild_id, number),
        )
        return [OldReason(*row) for row in rows]

    async def modlog_channel(self, guild_id: int) -> int | None:
        rows = await self._conn.execute_fetchall(
            "SELECT channel_id FROM modlog_channels WHERE guild_id = ?", (guild_id,)
        )
        return rows[0][0] if rows else None

    async def set_modlog_channel(self, guild_id: int, channel_id: int | None) -> None:
        async with self.transaction() as conn:
            if channel_id is None:
                await conn.execute("DELETE FROM modlog_channels WHERE guild_id = ?", (guild_id,))
            else:
                await conn.execute(
                    "INSERT INTO modlog_channels (guild_id, channel_id) VALUES (?, ?) "
                    "ON CONFLICT (guild_id) DO UPDATE SET channel_id = excluded.channel_id",
                    (guild_id, channel_id),
                )


def _unsaved_gains(rows: object) -> list[XpGain]:
    """The gains in a file of unsaved XP; ValueError unless it is exactly what keep_unsaved writes."""
    if not isinstance(rows, list):
        raise ValueError("not a list of gains")
    gains = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == len(XpGain._fields)):
            raise ValueError("a row is not a gain")
        gain = XpGain(*row)
        if not all(isinstance(value, int) and value >= 0 for value in (*gain[:3], *gain[4:])):
            raise ValueError("a gain holds something other than whole numbers")
        if not isinstance(gain.name, str):
            raise ValueError("a gain's name is not text")
        gains.append(gain)
    return gains


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite gave up waiting for another connection's lock ("database is locked")."""
    return "locked" in str(exc) or "busy" in str(exc)


def _refusal(path: Path, exc: sqlite3.OperationalError) -> DatabaseRefused | None:
    """The owner's line for a read-only or locked database while opening it, else None."""
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return DatabaseRefused(
            f"{path} cannot be written ({text}): make the file and its folder writable by the user running Tally"
        )
    if _is_busy(exc):
        return DatabaseRefused(
            f"{path} is locked by another program (a backup, a second Tally?) and stayed locked; "
            "start Tally again when it is done"
        )
    return None


def _json_rows(gains: Iterable[XpGain], chunk: int = 500) -> tuple[str, bool]:
    """Gains as one JSON array, encoded in chunks; and whether any brings coins.

    Run in a worker thread: json.dumps holds the GIL for its whole call, so a
    single call over 10,000 rows would stall the event loop for ~20 ms, while
    chunks of 500 let the loop run between them.
    """
    gains = iter(gains)
    parts = []
    with_coins = False
    while batch := list(itertools.islice(gains, chunk)):
        parts.append(json.dumps(batch)[1:-1])
        with_coins = with_coins or any(gain.coins for gain in batch)
    return "[" + ",".join(parts) + "]", with_coins


async def _run_script(conn: aiosqlite.Connection, script: str) -> None:
    """Run a schema or migration script (each is one BEGIN ... COMMIT), rolling back on failure."""
    try:
        await conn.executescript(script)
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise


async def _backup(conn: aiosqlite.Connection, path: Path, version: int) -> Path:
    """Write a consistent copy of the database before upgrading it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    backup = path.with_name(f"{path.name}.v{version}-{stamp}.bak")
    await conn.execute("VACUUM INTO ?", (str(backup),))
    return backup
