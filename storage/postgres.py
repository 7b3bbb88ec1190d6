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
from storage.schema import (
    SchemaReport,
    numbered_scripts,
    refuse_unless_complete,
    refuse_unless_current,
    refuse_unless_upgradable,
)

log = logging.getLogger(__name__)
PAGE_ROWS = 8192  # rows a page of a big read (fetch_pages)

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "schema_postgres.sql"
MIGRATIONS_DIR = ROOT / "migrations" / "postgres"

# Advisory locks, all in the two-number form (classid, objid), apart from any
# single-number lock another program may use:
#   (LOCK_CLASS, PREPARING)  one process prepares the schema at a time;
#   (LOCK_CLASS, RUNNING)    every running bot holds it shared, copy-data exclusively;
#   (SHARDS, 0 or 1 + id)    a bot's shards, exclusively: 0 is "every shard";
#   (COUNTS, SHARD_COUNT)    shared: the processes of one bot agree on the count;
#   (CASES, guild)           a guild's case numbers, for one transaction;
#   (AUDIT, guild)           a guild's XP audit numbers, for one transaction.
LOCK_CLASS = 0x7A11  # "Tally"
PREPARING, RUNNING = 1, 2
SHARDS, COUNTS, CASES, AUDIT = 0x7A12, 0x7A13, 0x7A14, 0x7A15
CLAIM_CHECK_SECONDS = 5.0  # how often a bot checks that the connection holding its claim is alive

HELD_BY_OTHERS = (
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = $1 AND objsubid = 2 "
    "AND granted AND pid <> pg_backend_pid() "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)

RETRIES = 5  # tries of a write that PostgreSQL aborted for a serialization failure or deadlock

# What "the server is not there right now" looks like from asyncpg.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # a connection closed under us, a pool that is closing
    asyncpg.OperatorInterventionError,  # admin shutdown, pg_terminate_backend, starting up
    asyncpg.InsufficientResourcesError,  # too many connections
    asyncpg.ReadOnlySQLTransactionError,  # a standby after a failover: writes wait for the primary
)

T = TypeVar("T")


def is_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


async def hold_alone(url: str) -> asyncpg.Connection | None:
    """A connection that holds the database alone (no bot runs, none can start) until closed; None if a bot runs."""
    conn = await asyncpg.connect(url, timeout=10)
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_CLASS, RUNNING):
        await conn.close()
        return None
    return conn


def describe(url: str) -> str:
    """The URL as the log may show it: user, host, port and database, never the password."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "postgresql://(a URL that cannot be read)"
    user = f"{parts.username}@" if parts.username else ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"postgresql://{user}{parts.hostname or 'localhost'}{port}{parts.path}"


def file_stem(url: str) -> str:
    """A file name for this database (server and name, never the password): postgres-host-port-dbname."""
    parts = urllib.parse.urlsplit(url)
    name = f"postgres-{parts.hostname}-{parts.port or 5432}-{parts.path.strip('/')}"
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def check_url(url: str) -> None:
    """Refuse a malformed ``DATABASE_URL`` with one line (the password never in it)."""
    form = "postgresql://user:password@host:port/dbname"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # the message would quote the URL: say what to do instead
        raise DatabaseRefused(
            f"DATABASE_URL cannot be read; the form is {form}, with characters such as @ : / [ ] # in the "
            "password written percent-encoded (%40 for @, %3A for :, %2F for /)"
        ) from None
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
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return DatabaseRefused(
            f"DATABASE_URL: the database at {where} is read-only (a standby server, or "
            "default_transaction_read_only); point DATABASE_URL at the primary, or make the database writable"
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

    async def fetch_pages(self, query: str, *args: Any, size: int) -> AsyncIterator[list[asyncpg.Record]]:
        """PostgresStore.fetch_pages on this connection."""
        async with self._conn.transaction(readonly=True):
            cursor = await self._conn.cursor(query, *args)
            while page := await cursor.fetch(size, timeout=self._timeout):
                yield page

    async def fetchval(self, query: str, *args: Any) -> Any:
        row = await self.fetchrow(query, *args)
        return row[0] if row else None


class PostgresStore:
    """One PostgreSQL database. Build it with ``await PostgresStore.open(url)``."""

    dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self.url = url
        self.description = f"PostgreSQL database {describe(url)}"
        self._claim: asyncpg.Connection | None = None  # a bot's or copy-data's locks live on it
        self._watcher: asyncio.Task[None] | None = None
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
        shards: tuple[int | None, tuple[int, ...] | None] = (None, None),
        upgrade: bool = True,
        pool_size: int = 5,
    ) -> PostgresStore:
        """Connect, then create, upgrade, check or refuse the database as described above.

        ``exclusive``: this is a running bot, with ``shards`` = (SHARD_COUNT,
        SHARD_IDS), None meaning unset. It claims its shards (see :meth:`claim`).
        """
        check_url(url)
        migrations = numbered_scripts(MIGRATIONS_DIR) if migrations is None else migrations
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size, timeout=10)
        except (asyncpg.PostgresError, *UNAVAILABLE) as exc:
            raise _refusal(url, exc) from None  # asyncpg's own text may carry the URL
        store = cls(pool, url)
        try:
            async with pool.acquire() as conn:
                await conn.execute("SELECT pg_advisory_lock($1, $2)", LOCK_CLASS, PREPARING)
                try:
                    schema_sql = schema_path.read_text(encoding="utf-8")
                    await _prepare(conn, url, schema_sql, schema_version, migrations, upgrade)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS, PREPARING)
            if exclusive:
                await store.claim(*shards)
        except BaseException as exc:
            await store.close()
            if isinstance(exc, UNAVAILABLE):
                raise _refusal(url, exc) from None
            if isinstance(exc, asyncpg.PostgresError):  # the server's own words name no password
                hint = "nothing was changed"
                if isinstance(exc, asyncpg.InsufficientPrivilegeError):
                    hint = "give the user in DATABASE_URL a database it owns (createdb -O USER DBNAME)"
                raise DatabaseRefused(
                    f"DATABASE_URL: PostgreSQL refused to prepare Tally's tables in {describe(url)} ({exc}); {hint}"
                ) from None
            raise
        return store

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

    async def fetch_pages(self, query: str, *args: Any, size: int = PAGE_ROWS) -> AsyncIterator[list[asyncpg.Record]]:
        """A big read through a cursor (one snapshot), ``size`` records at a time.

        A million records fetched at once stall the event loop: each is a
        container the garbage collector tracks, and its full collections
        over them grow to 90 ms while they pile up. The caller takes what it
        needs from each page before the next comes.
        """
        async with self._connection() as conn:
            async for page in conn.fetch_pages(query, *args, size=size):
                yield page

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

    async def claim(self, shard_count: int | None, shard_ids: tuple[int, ...] | None) -> None:
        """Announce a running bot and claim its shards, or refuse with DatabaseRefused.

        Each shard runs in one process only (two would answer every command
        twice), the processes of one bot agree on SHARD_COUNT, and no bot runs
        while copy-data copies. The locks live on a connection of their own; a
        watcher takes them again if that connection is ever lost.
        """
        self._claim = await asyncpg.connect(self.url, timeout=10)
        try:
            await _claim(self._claim, shard_count, shard_ids, self.description)
        except BaseException:
            await self._claim.close()
            self._claim = None
            raise
        self._watcher = asyncio.create_task(self._keep_claim(shard_count, shard_ids), name="tally-shard-claim")

    async def _keep_claim(self, shard_count: int | None, shard_ids: tuple[int, ...] | None) -> None:
        """Take the claim again on a new connection whenever the one holding it was lost."""
        while True:
            await asyncio.sleep(CLAIM_CHECK_SECONDS)  # a check timer
            if self._claim is not None and not self._claim.is_closed():
                continue
            try:
                conn = await asyncpg.connect(self.url, timeout=10)
            except (asyncpg.PostgresError, *UNAVAILABLE):
                continue  # the server is away; the flusher says so
            try:
                await _claim(conn, shard_count, shard_ids, self.description)
            except DatabaseRefused as exc:
                log.error("lost this process's claim on the database and cannot take it back: %s", exc)
                await conn.close()
                continue
            except (asyncpg.PostgresError, *UNAVAILABLE):
                await conn.close()
                continue
            self._claim = conn
            log.warning("the connection holding this process's shard claim was lost; took the claim again")

    async def keep_bots_out(self) -> bool:
        """Hold the database alone (copy-data): False when a bot is running; bots that start meanwhile refuse."""
        self._claim = await hold_alone(self.url)
        return self._claim is not None

    async def wait_for_lock_at_most(self, seconds: float) -> None:
        """How long any one statement may take from now on (shutdown bounds each try)."""
        self._timeout = max(0.05, seconds)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self._claim is not None:
            with contextlib.suppress(*UNAVAILABLE):
                await asyncio.wait_for(self._claim.close(), 5)  # the locks go with it
            self._claim = None
        try:
            await asyncio.wait_for(self._pool.close(), 10)
        except (TimeoutError, *UNAVAILABLE):
            self._pool.terminate()


async def _claim(
    conn: asyncpg.Connection, shard_count: int | None, shard_ids: tuple[int, ...] | None, where: str
) -> None:
    if not await conn.fetchval("SELECT pg_try_advisory_lock_shared($1, $2)", LOCK_CLASS, RUNNING):
        raise DatabaseRefused(f"copy-data is copying {where} right now; start Tally when it has finished")
    mine = [0] if shard_ids is None else [1 + shard_id for shard_id in shard_ids]
    taken = [key for key in mine if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", SHARDS, key)]
    others = {row[0] for row in await conn.fetch(HELD_BY_OTHERS, SHARDS)} | set(taken)
    if others and (shard_ids is None or 0 in others or taken):
        running = "every shard" if 0 in others else "shards " + ",".join(str(key - 1) for key in sorted(others))
        mine_text = "every shard" if shard_ids is None else "shards " + ",".join(map(str, shard_ids))
        raise DatabaseRefused(
            f"another Tally process on {where} already runs {running}, and this one would run {mine_text}: "
            "each shard must run in one process only; give each process its own SHARD_IDS (with the same "
            "SHARD_COUNT), or stop the other"
        )
    await conn.execute("SELECT pg_advisory_lock_shared($1, $2)", COUNTS, shard_count or 0)
    counts = {row[0] for row in await conn.fetch(HELD_BY_OTHERS, COUNTS)} - {shard_count or 0}
    if counts:
        raise DatabaseRefused(
            f"the Tally processes already running on {where} have SHARD_COUNT={min(counts) or 'unset'}, this one "
            f"{shard_count or 'unset'}: every process of one bot needs the same SHARD_COUNT"
        )


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
    for row in await conn.fetch(
        "SELECT relname, reloptions FROM pg_class "
        "WHERE relnamespace = current_schema()::regnamespace AND reloptions IS NOT NULL"
    ):
        found[f"storage {row[0]}"] = " ".join(sorted(row[1]))
    found["version"] = str(await conn.fetchval("SELECT version FROM tally_version"))
    return found


async def _version(conn: asyncpg.Connection, where: str) -> int:
    """The schema version stamped in the database; 0 when it has no Tally version table."""
    if await conn.fetchval("SELECT to_regclass('tally_version')") is None:
        return 0
    rows = await conn.fetch("SELECT version FROM tally_version")
    if len(rows) != 1 or rows[0][0] is None:
        raise DatabaseRefused(
            f"{where} has a tally_version table without exactly one version in it; restore a backup, or "
            "give Tally a database of its own (createdb) and point DATABASE_URL at it"
        )
    return rows[0][0]


async def _expected_schema(conn: asyncpg.Connection, schema_sql: str) -> SchemaReport:
    """What the schema script creates, built as temporary tables that are rolled back.

    Every role may create temporary tables (no CREATE right on the database
    needed), and they are the connection's own: starters never collide.
    """
    report = None
    with contextlib.suppress(_Discard):
        async with conn.transaction():
            await conn.execute("SET LOCAL search_path TO pg_temp")
            await conn.execute(schema_sql)
            report = await schema_report(conn)
            raise _Discard
    return report


class _Discard(Exception):
    """Leaves a transaction by rolling it back."""


async def _prepare(
    conn: asyncpg.Connection, url: str, schema_sql: str, schema_version: int, migrations: dict[int, str], upgrade: bool
) -> None:
    where = describe(url)
    version = await _version(conn, where)
    elsewhere = "give Tally a database of its own (createdb) and point DATABASE_URL at it"
    refuse_unless_upgradable(where, version, await schema_report(conn), schema_version, migrations, elsewhere)
    if not upgrade:
        refuse_unless_current(where, version, schema_version)

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
                reached = await _version(conn, where)
                if reached != step + 1:
                    raise DatabaseRefused(f"migration {step} left {where} at version {reached}, expected {step + 1}")

    expected = await _expected_schema(conn, schema_sql)
    refuse_unless_complete(where, await _version(conn, where), schema_version, expected, await schema_report(conn))
