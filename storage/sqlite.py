"""The SQLite backend: one file, one long-lived aiosqlite connection, one writer.

Every write goes through :meth:`SQLiteStore.transaction`, which holds one lock,
so writes never interleave. Queries are written once for both backends with
``$1`` placeholders; SQLite reads ``?1`` for the same thing, and
:class:`SQLiteConnection` translates.

At start-up :meth:`SQLiteStore.open` makes sure the file is a Tally database
it understands: a new file gets ``schema.sql``; an older one is upgraded by
the numbered migrations in ``migrations/sqlite`` (after a backup copy);
anything else is refused with a :class:`DatabaseRefused` whose message says
what to do, and the file is left untouched. Refused too, before anything is
written: a read-only file, a folder SQLite cannot create its journal files
in, a file with damaged pages (``PRAGMA quick_check``; skipped when the file
is exactly as a Tally connection closed it, which ``<file>.closed`` records:
its size, time and inode), and, for the bot, a
file another Tally process is using (an exclusive lock on ``<file>.lock``
that the kernel releases when the process ends, however it ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import re
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage.records import ConstraintViolated, DatabaseBusy, DatabaseRefused, DatabaseUnavailable
from storage.schema import (
    SchemaReport,
    numbered_scripts,
    refuse_unless_complete,
    refuse_unless_current,
    refuse_unless_upgradable,
)

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "schema.sql"
MIGRATIONS_DIR = ROOT / "migrations" / "sqlite"

T = TypeVar("T")
PAGE_ROWS = 8192  # rows a page of a big read (fetch_pages): a few milliseconds of the GIL


@functools.cache
def _numbered(query: str) -> str:
    """``$1`` → ``?1``: SQLite's spelling of a numbered placeholder."""
    return re.sub(r"\$(\d+)", r"?\1", query)


class SQLiteConnection:
    """The connection the SQL of each concern talks to (the same four calls as on PostgreSQL)."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, query: str, *args: Any) -> int:
        """Run one statement; the number of rows it changed."""
        try:
            cursor = await self._conn.execute(_numbered(query), args)
        except sqlite3.IntegrityError as exc:
            raise ConstraintViolated(str(exc)) from exc
        return cursor.rowcount

    async def executemany(self, query: str, rows: list[tuple]) -> None:
        """One statement for many rows (copy-data's batches)."""
        try:
            await self._conn.executemany(_numbered(query), rows)
        except sqlite3.IntegrityError as exc:
            raise ConstraintViolated(str(exc)) from exc

    async def fetch(self, query: str, *args: Any) -> list[sqlite3.Row]:
        try:
            return list(await self._conn.execute_fetchall(_numbered(query), args))
        except sqlite3.IntegrityError as exc:  # an INSERT ... RETURNING
            raise ConstraintViolated(str(exc)) from exc

    async def fetchrow(self, query: str, *args: Any) -> sqlite3.Row | None:
        rows = await self.fetch(query, *args)
        return rows[0] if rows else None

    async def fetchval(self, query: str, *args: Any) -> Any:
        row = await self.fetchrow(query, *args)
        return row[0] if row else None


async def schema_report(conn: aiosqlite.Connection) -> SchemaReport:
    """The schema as the start-up check sees it: tables with their columns, and indexes."""
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


async def schema_definitions(conn: SQLiteConnection) -> dict[str, str]:
    """Every table's and index's full definition (comments and spacing aside), and the version.

    SQLite keeps each CREATE statement as written, so types, defaults, keys
    and CHECK constraints are all in it.
    """
    rows = await conn.fetch(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND sql IS NOT NULL"
    )
    found = {f"{kind} {name}": " ".join(re.sub(r"--[^\n]*", "", sql).split()) for kind, name, sql in rows}
    found["version"] = str(await conn.fetchval("PRAGMA user_version"))
    return found


async def _expected_schema(schema_sql: str) -> SchemaReport:
    """What schema.sql creates, read back from a scratch in-memory database."""
    async with aiosqlite.connect(":memory:", isolation_level=None) as scratch:
        await scratch.executescript(schema_sql)
        return await schema_report(scratch)


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


def closed_mark(path: Path) -> Path:
    """Where a clean close records the file as it left it (see _mark_closed)."""
    return path.with_name(path.name + ".closed")


def _identity(path: Path) -> str | None:
    """What changes whenever the file's bytes do: its size, modification time, device and inode. None
    when it is missing, or when its write-ahead log holds changes not in it yet."""
    try:
        if path.with_name(path.name + "-wal").stat().st_size:
            return None
    except FileNotFoundError:
        pass
    try:
        found = path.stat()
    except OSError:
        return None
    return f"{found.st_size} {found.st_mtime_ns} {found.st_dev} {found.st_ino}"


async def _mark_closed(path: Path) -> None:
    """Record in ``<file>.closed`` that a Tally connection closed the file as it is now: the next open
    need not read every page of it again. The record is written later than the file's last change, by
    the file system's clock (which moves in ticks of a few milliseconds), so that any change after it
    shows."""
    if (identity := _identity(path)) is None:
        return
    mark = closed_mark(path)
    for _ in range(10):
        mark.write_text(identity + "\n", encoding="ascii")
        if mark.stat().st_mtime_ns > path.stat().st_mtime_ns:
            return
        await asyncio.sleep(0.005)  # the clock's next tick
    mark.unlink()


def _unchanged_since_closed(path: Path) -> bool:
    """Whether the file is exactly as a Tally connection left it when it last closed it, as
    ``<file>.closed`` recorded then. The record is used once: a stop that is not clean leaves none, and
    an edit, a copy or a restore changes the file's time or inode, so the next open checks every page."""
    mark = closed_mark(path)
    try:
        left = mark.read_text(encoding="ascii").strip()
        written = mark.stat().st_mtime_ns
        mark.unlink()
        return left == _identity(path) and path.stat().st_mtime_ns < written
    except (OSError, UnicodeError):
        return False


OLDEST_SQLITE = (3, 35, 0)  # RETURNING; tests/test_db_sqlite.py checks that the SQL needs nothing newer


def hold_exclusive(path: Path) -> int:
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
            f"another Tally is using this database{pid}: {path}; stop it first, or give this one its own "
            "DATABASE_PATH (SQLite is for one process: to split a bot over several, use DATABASE_URL)"
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


class SQLiteStore:
    """One SQLite file. Build it with ``await SQLiteStore.open(path)``."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: Path, lock_fd: int | None = None) -> None:
        self._conn = conn
        self._reader = SQLiteConnection(conn)
        self.path = path
        self.description = f"SQLite file {Path(path).resolve()}"
        self._write_lock = asyncio.Lock()
        self._lock_fd = lock_fd

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        schema_path: Path = SCHEMA_PATH,
        schema_version: int,
        migrations: dict[int, str] | None = None,
        busy_timeout: float = 5.0,
        exclusive: bool = False,
        upgrade: bool = True,
        shards: object = None,  # PostgreSQL's concern: one SQLite file is one process
    ) -> SQLiteStore:
        """Open ``path``, creating, upgrading or refusing it as described above.

        ``exclusive``: refuse when another process holds the file the same way
        (the bot opens it so; tools and tests may open a second connection).
        """
        path = Path(path)
        if sqlite3.sqlite_version_info < OLDEST_SQLITE:
            raise DatabaseRefused(
                f"this Python uses SQLite {sqlite3.sqlite_version}; Tally needs SQLite "
                f"{'.'.join(map(str, OLDEST_SQLITE))} or newer (a newer Python, e.g. from python.org or deadsnakes)"
            )
        migrations = numbered_scripts(MIGRATIONS_DIR) if migrations is None else migrations
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseRefused(f"cannot create the folder for {path}: {exc.strerror}") from exc
        _check_writable(path)
        lock_fd = hold_exclusive(path) if exclusive else None
        try:
            try:
                # timeout: how long a write waits for another writer before "database is locked"
                conn = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
            except sqlite3.Error as exc:
                raise DatabaseRefused(f"cannot open {path}: {exc}") from exc
            conn.row_factory = sqlite3.Row
            try:
                schema_sql = schema_path.read_text(encoding="utf-8")
                await _prepare(conn, path, schema_sql, schema_version, migrations, upgrade)
            except BaseException as exc:
                await conn.close()
                if isinstance(exc, sqlite3.OperationalError) and (refused := _refusal(path, exc)):
                    raise refused from exc
                raise
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return cls(conn, path, lock_fd)

    # -- reading and writing ---------------------------------------------------------

    async def fetch(self, query: str, *args: Any) -> list[sqlite3.Row]:
        return await self._reader.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> sqlite3.Row | None:
        return await self._reader.fetchrow(query, *args)

    async def fetch_pages(self, query: str, *args: Any, size: int = PAGE_ROWS) -> AsyncIterator[list[tuple]]:
        """A big read as plain tuples, ``size`` rows at a time.

        Fetching holds the GIL: a million rows at once would stall the event
        loop for a third of a second (and ``sqlite3.Row`` doubles the cost).
        No write runs on the connection meanwhile: its changes could show
        through a statement still being read.
        """
        async with self._write_lock:
            cursor = await self._conn.execute(_numbered(query), args)
            cursor.row_factory = None
            try:
                while page := await cursor.fetchmany(size):
                    yield page
            finally:
                await cursor.close()

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._reader.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> int:
        """One write statement on its own; the number of rows it changed."""
        async with self.transaction() as conn:
            return await conn.execute(query, *args)

    async def write(self, body: Callable[[SQLiteConnection], Awaitable[T]]) -> T:
        """Run ``body`` in one write transaction (SQLite admits one writer: nothing to retry)."""
        async with self.transaction() as conn:
            return await body(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SQLiteConnection]:
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
                yield self._reader
                await self._conn.execute("COMMIT")
            except BaseException as exc:
                await self._roll_back()
                if isinstance(exc, sqlite3.OperationalError) and _disk_refused(exc):
                    # expected on a full disk: nothing was changed, and the caller may try again later
                    raise DatabaseUnavailable(
                        f"{self.description} could not be written: {exc}; is the disk full?"
                    ) from exc
                raise

    async def _roll_back(self) -> None:
        """ROLLBACK if a transaction is open once every queued statement has run."""
        with contextlib.suppress(sqlite3.OperationalError):  # "no transaction is active"
            await self._conn.execute("ROLLBACK")

    async def wait_for_lock_at_most(self, seconds: float) -> None:
        """How long a write waits for another program's lock from now on (shutdown shortens it).

        PRAGMA takes no placeholders: the value is an integer computed here, never input.
        """
        await self._conn.execute(f"PRAGMA busy_timeout = {max(1, int(seconds * 1000))}")

    async def close(self) -> None:
        async with self._write_lock:  # let a write in progress finish first
            await self._conn.close()
        with contextlib.suppress(OSError):
            await _mark_closed(self.path)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # another Tally may use the file from now on
            self._lock_fd = None


async def _prepare(
    conn: aiosqlite.Connection,
    path: Path,
    schema_sql: str,
    schema_version: int,
    migrations: dict[int, str],
    upgrade: bool,
) -> None:
    # Read-only checks first: a refused file must be left exactly as it was.
    try:
        async with conn.execute("PRAGMA user_version") as cursor:
            version = (await cursor.fetchone())[0]
        found = await schema_report(conn)
        if _unchanged_since_closed(path):  # a big file takes a while to read through (0.2 s for 36 MB)
            log.debug("%s is as Tally closed it: its pages are not checked again", path)
            problems = ["ok"]
        else:
            async with conn.execute("PRAGMA quick_check(5)") as cursor:  # damaged pages, before any write
                problems = [row[0] for row in await cursor.fetchall()]
    except sqlite3.OperationalError:
        raise  # locked or read-only: open() explains
    except sqlite3.DatabaseError as exc:
        if "malformed" in str(exc):
            raise _damaged(path, str(exc)) from exc
        raise DatabaseRefused(
            f"{path} is not a SQLite database ({exc}); point DATABASE_PATH at Tally's database or at a new file name"
        ) from exc
    if problems != ["ok"]:
        raise _damaged(path, "; ".join(problems))

    refuse_unless_upgradable(
        str(path), version, found, schema_version, migrations, "point DATABASE_PATH at a new file name"
    )
    if not upgrade:
        refuse_unless_current(str(path), version, schema_version)

    async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
        mode = (await cursor.fetchone())[0]
    if mode.lower() != "wal":
        log.warning("SQLite kept journal mode %s for %s (WAL unsupported here)", mode, path)
    await conn.execute("PRAGMA synchronous = NORMAL")
    await conn.execute("PRAGMA foreign_keys = ON")

    if version == 0:
        log.info("creating a new database at %s (schema version %s)", path.resolve(), schema_version)
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
    expected = await _expected_schema(schema_sql)
    refuse_unless_complete(str(path), version, schema_version, expected, await schema_report(conn))


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite gave up waiting for another connection's lock ("database is locked")."""
    return "locked" in str(exc) or "busy" in str(exc)


def _disk_refused(exc: sqlite3.OperationalError) -> bool:
    """Whether the disk refused a write: full (SQLITE_FULL), or a file size limit or a failing disk (SQLITE_IOERR)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)


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
