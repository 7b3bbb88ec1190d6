"""The PostgreSQL backend: an asyncpg pool, shared by every Tally process of one bot.

Several processes (Discord shards) write the same database at once, so a
write is a function run inside one transaction (:meth:`PostgresStore.write`)
that is run again, a bounded number of times, when PostgreSQL reports a
serialization failure or a deadlock. A server that is down or restarting
raises :class:`DatabaseUnavailable`: the caller keeps its data and tries
later.

At start-up :meth:`PostgresStore.open` gives the promises the SQLite file
gets: a new database gets ``schema_postgres.sql``; an older one is upgraded
by the numbered migrations in ``migrations/postgres``, each in one
transaction with its version bump; a newer one, or one that holds other
tables but no Tally version, is refused and left untouched. Two processes
starting at once take turns (an advisory lock), so the schema is created once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from storage.records import ConstraintViolated, DatabaseBusy, DatabaseRefused, DatabaseUnavailable
from storage.schema import SchemaReport, numbered_scripts, refuse_unless_complete, refuse_unless_upgradable

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "schema_postgres.sql"
MIGRATIONS_DIR = ROOT / "migrations" / "postgres"

# Advisory lock keys (two-int form, apart from any single-key lock): one
# process prepares the schema at a time; every running bot holds the second
# shared, so a tool that must not run beside a bot (copy-data) can tell.
LOCK_CLASS = 0x7A11  # "Tally"
PREPARING, RUNNING = 1, 2

RETRIES = 5  # tries of a write that PostgreSQL aborted for a serialization failure or deadlock

# What "the server is not there right now" looks like from asyncpg.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # a connection closed under us, a pool that is closing
    asyncpg.OperatorInterventionError,  # admin shutdown, pg_terminate_backend, starting up
    asyncpg.InsufficientResourcesError,  # too many connections
)

T = TypeVar("T")


def is_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def describe(url: str) -> str:
    """The URL as the log may show it: user, host, port and database, never the password."""
    parts = urllib.parse.urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"postgresql://{user}{parts.hostname or 'localhost'}{port}{parts.path}"


def check_url(url: str) -> None:
    """Refuse a malformed ``DATABASE_URL`` with one line (the password never in it)."""
    form = "postgresql://user:password@host:port/dbname"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseRefused(f"DATABASE_URL must start with postgresql:// (the form is {form})")
    try:
        parts.port  # noqa: B018 (parsing it is the check)
    except ValueError:
        raise DatabaseRefused(f"DATABASE_URL has a port that is not a number; the form is {form}") from None
    if not parts.hostname:
        raise DatabaseRefused(f"DATABASE_URL names no host; the form is {form}")
    if not parts.path.strip("/") or "/" in parts.path.strip("/"):
        raise DatabaseRefused(f"DATABASE_URL names no database (the part after the last /); the form is {form}")


def _refusal(url: str, exc: BaseException) -> DatabaseRefused:
    """The owner's line for a server that would not let Tally in."""
    parts = urllib.parse.urlsplit(url)
    where = describe(url)
    database = parts.path.strip("/")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return DatabaseRefused(
            f"DATABASE_URL names database {database!r}, which does not exist on the server; create it "
            f"(createdb -O {parts.username or 'USER'} {database}) or fix the URL ({where})"
        )
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return DatabaseRefused(f"DATABASE_URL: the server refused the password for user {parts.username!r}; fix it")
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return DatabaseRefused(
            f"DATABASE_URL: the server refused user {parts.username!r} ({exc.args[0] if exc.args else 'no reason'}); "
            "create the role or fix the URL"
        )
    if isinstance(exc, UNAVAILABLE):
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        return DatabaseRefused(
            f"DATABASE_URL: cannot reach PostgreSQL at {where} ({reason}); is the server running, "
            "and are the host and port right?"
        )
    return DatabaseRefused(f"DATABASE_URL: PostgreSQL refused the connection ({type(exc).__name__}) at {where}")


class PostgresConnection:
    """The connection the SQL of each concern talks to (the same four calls as on SQLite)."""

    dialect = "postgres"

    def __init__(self, conn: asyncpg.Connection, timeout: float | None) -> None:
        self._conn = conn
        self._timeout = timeout

    async def execute(self, query: str, *args: Any) -> int:
        """Run one statement; the number of rows it changed (from asyncpg's status, "UPDATE 1")."""
        try:
            status = await self._conn.execute(query, *args, timeout=self._timeout)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise ConstraintViolated(str(exc)) from exc
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def executemany(self, query: str, rows: list[tuple]) -> None:
        """One statement for many rows (copy-data's batches), pipelined by asyncpg."""
        try:
            await self._conn.executemany(query, rows, timeout=self._timeout)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise ConstraintViolated(str(exc)) from exc

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self._conn.fetch(query, *args, timeout=self._timeout)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise ConstraintViolated(str(exc)) from exc

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        rows = await self.fetch(query, *args)
        return rows[0] if rows else None

    async def fetchval(self, query: str, *args: Any) -> Any:
        row = await self.fetchrow(query, *args)
        return row[0] if row else None


class PostgresStore:
    """One PostgreSQL database. Build it with ``await PostgresStore.open(url)``."""

    dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool, url: str, running: asyncpg.Connection | None) -> None:
        self._pool = pool
        self.url = url
        self.description = f"PostgreSQL database {describe(url)}"
        self._running = running  # holds the RUNNING lock while the bot runs
        self._timeout: float | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        schema_path: Path = SCHEMA_PATH,
        schema_version: int,
        migrations: dict[int, str] | None = None,
        exclusive: bool = False,
        pool_size: int = 5,
    ) -> PostgresStore:
        """Connect, then create, upgrade, check or refuse the database as described above.

        ``exclusive``: this is a running bot (it announces itself with a shared
        advisory lock, which tools that need the database to themselves check).
        """
        check_url(url)
        migrations = numbered_scripts(MIGRATIONS_DIR) if migrations is None else migrations
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size, timeout=10)
        except (asyncpg.PostgresError, *UNAVAILABLE) as exc:
            raise _refusal(url, exc) from None  # asyncpg's own text may carry the URL
        running = None
        try:
            async with pool.acquire() as conn:
                await conn.execute("SELECT pg_advisory_lock($1, $2)", LOCK_CLASS, PREPARING)
                try:
                    await _prepare(conn, url, schema_path.read_text(encoding="utf-8"), schema_version, migrations)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS, PREPARING)
            if exclusive:
                running = await pool.acquire()
                await running.execute("SELECT pg_advisory_lock_shared($1, $2)", LOCK_CLASS, RUNNING)
        except BaseException as exc:
            if running is not None:
                await pool.release(running)
            await pool.close()
            if isinstance(exc, UNAVAILABLE):
                raise _refusal(url, exc) from None
            raise
        return cls(pool, url, running)

    # -- reading and writing ---------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[PostgresConnection]:
        """A pooled connection; a server that is not there becomes DatabaseUnavailable."""
        try:
            conn = await self._pool.acquire(timeout=self._timeout)
        except (asyncpg.PostgresError, *UNAVAILABLE) as exc:  # any refusal to connect: shut down, not accepting
            raise DatabaseUnavailable(f"{self.description} is unavailable ({type(exc).__name__})") from exc
        try:
            yield PostgresConnection(conn, self._timeout)
        except UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"{self.description} is unavailable ({type(exc).__name__})") from exc
        finally:
            with contextlib.suppress(*UNAVAILABLE):
                await self._pool.release(conn)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self._connection() as conn:
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self._connection() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self._connection() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> int:
        """One write statement on its own: atomic by itself, so one round trip (no BEGIN, no COMMIT)."""

        async def once() -> int:
            async with self._connection() as conn:
                return await conn.execute(query, *args)

        return await self._retrying(once)

    async def write(self, body: Callable[[PostgresConnection], Awaitable[T]]) -> T:
        """Run ``body`` in one transaction."""

        async def once() -> T:
            async with self.transaction() as conn:
                return await body(conn)

        return await self._retrying(once)

    async def _retrying(self, once: Callable[[], Awaitable[T]]) -> T:
        """Run a write again (up to RETRIES tries) when PostgreSQL aborted it for a
        serialization failure or a deadlock with another process's write."""
        for attempt in range(1, RETRIES + 1):
            try:
                return await once()
            except asyncpg.TransactionRollbackError as exc:
                if attempt == RETRIES:
                    raise DatabaseBusy(f"gave up after {RETRIES} tries ({type(exc).__name__})") from exc
                log.debug("write aborted by %s; try %s of %s", type(exc).__name__, attempt + 1, RETRIES)
                await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))  # back off apart from the other writer
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresConnection]:
        """One transaction on one pooled connection: COMMIT at the end, ROLLBACK on error."""
        async with self._connection() as conn, conn._conn.transaction():
            yield conn

    async def bot_is_running(self) -> bool:
        """Whether a Tally bot holds this database (tools that need it to themselves ask)."""
        async with self._connection() as conn:
            return await bot_is_running(conn._conn)

    async def wait_for_lock_at_most(self, seconds: float) -> None:
        """How long any one statement may take from now on (shutdown bounds each try)."""
        self._timeout = max(0.05, seconds)

    async def close(self) -> None:
        if self._running is not None:
            with contextlib.suppress(*UNAVAILABLE):
                await self._pool.release(self._running)
            self._running = None
        try:
            await asyncio.wait_for(self._pool.close(), 10)
        except (TimeoutError, *UNAVAILABLE):
            self._pool.terminate()


async def bot_is_running(conn: asyncpg.Connection) -> bool:
    """Whether a Tally bot holds this database (its shared RUNNING lock), asked without waiting."""
    free = await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_CLASS, RUNNING)
    if free:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS, RUNNING)
    return not free


async def schema_report(conn: asyncpg.Connection) -> SchemaReport:
    """Tables with their columns, and indexes, in the connection's current schema."""
    tables: dict[str, set[str]] = {}
    for row in await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
    ):
        tables.setdefault(row[0], set()).add(row[1])
    indexes = {
        row[0] for row in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
    }
    # Every primary key has an index named after its constraint; SQLite's have none: leave them out.
    keys = await conn.fetch(
        "SELECT conname FROM pg_constraint WHERE contype = 'p' AND connamespace = current_schema()::regnamespace"
    )
    return SchemaReport(tables, indexes - {row[0] for row in keys})


async def schema_definitions(conn: PostgresConnection) -> dict[str, str]:
    """Every column, constraint and index of the current schema in full, and the version."""
    found = {}
    for row in await conn.fetch(
        "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity "
        "FROM information_schema.columns WHERE table_schema = current_schema()"
    ):
        found[f"column {row[0]}.{row[1]}"] = " ".join(str(value) for value in row[2:])
    for row in await conn.fetch(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = current_schema()::regnamespace"
    ):
        found[f"constraint {row[0]}.{row[1]}"] = row[2]
    for row in await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"):
        found[f"index {row[0]}"] = row[1]
    found["version"] = str(await conn.fetchval("SELECT version FROM tally_version"))
    return found


async def _version(conn: asyncpg.Connection) -> int:
    """The schema version stamped in the database; 0 when it has no Tally version table."""
    if await conn.fetchval("SELECT to_regclass('tally_version')") is None:
        return 0
    return await conn.fetchval("SELECT version FROM tally_version")


async def _expected_schema(conn: asyncpg.Connection, schema_sql: str) -> SchemaReport:
    """What the schema script creates, built in a scratch schema that is rolled back."""
    report = None
    with contextlib.suppress(_Discard):
        async with conn.transaction():
            await conn.execute("CREATE SCHEMA tally_scratch")
            await conn.execute("SET LOCAL search_path TO tally_scratch")
            await conn.execute(schema_sql)
            report = await schema_report(conn)
            raise _Discard
    return report


class _Discard(Exception):
    """Leaves a transaction by rolling it back."""


async def _prepare(
    conn: asyncpg.Connection, url: str, schema_sql: str, schema_version: int, migrations: dict[int, str]
) -> None:
    where = describe(url)
    version = await _version(conn)
    elsewhere = "give Tally a database of its own (createdb) and point DATABASE_URL at it"
    refuse_unless_upgradable(where, version, await schema_report(conn), schema_version, migrations, elsewhere)

    if version == 0:
        log.info("creating a new database in %s (schema version %s)", where, schema_version)
        async with conn.transaction():
            await conn.execute(schema_sql)
    elif version < schema_version:
        log.info(
            "upgrading %s from schema version %s to %s (back it up first with pg_dump if you have not)",
            where,
            version,
            schema_version,
        )
        for step in range(version, schema_version):
            async with conn.transaction():  # the upgrade and its version bump land together
                await conn.execute(migrations[step])
                reached = await _version(conn)
                if reached != step + 1:
                    raise DatabaseRefused(f"migration {step} left {where} at version {reached}, expected {step + 1}")

    expected = await _expected_schema(conn, schema_sql)
    refuse_unless_complete(where, await _version(conn), schema_version, expected, await schema_report(conn))
