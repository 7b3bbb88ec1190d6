"""The PostgreSQL database itself: DATABASE_URL refusals, schema promises, start-up races, the running-bot lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from db import SCHEMA_VERSION, Database, DatabaseRefused
from storage import postgres
from tests.conftest import Storage, postgres_url

pytestmark = pytest.mark.backends("postgres")

GUILD = 444444444444444444
V1_SCHEMA = Path(__file__).parent / "data" / "schema_v1_postgres.sql"


async def raw(storage: Storage) -> asyncpg.Connection:
    return await asyncpg.connect(storage.url)


@pytest.mark.parametrize(
    "url, says",
    [
        ("mysql://tally@localhost/tally", "must start with postgresql://"),
        ("postgresql://tally:pw@localhost:port/tally", "port that is not a number"),
        ("postgresql://tally:pw@localhost:5432/", "names no database"),
        ("postgresql://tally:pw@/tally", "names no host"),
    ],
)
def test_a_malformed_url_is_refused_naming_database_url_without_the_password(url, says):
    with pytest.raises(DatabaseRefused) as refused:
        postgres.check_url(url)
    assert "DATABASE_URL" in str(refused.value) and says in str(refused.value)
    assert ":pw@" not in str(refused.value)


async def test_an_unreachable_server_is_refused_naming_database_url(storage):
    with pytest.raises(
        DatabaseRefused, match="DATABASE_URL: cannot reach PostgreSQL at postgresql://postgres@127.0.0.1:1/x"
    ) as refused:
        await Database.open("postgresql://postgres:hunter2@127.0.0.1:1/x")
    assert "hunter2" not in str(refused.value)


async def test_a_missing_database_is_refused_saying_how_to_create_it(storage):
    with pytest.raises(DatabaseRefused, match="names database 'no_such_tally_db', which does not exist .*createdb"):
        await Database.open(postgres_url("no_such_tally_db"))


async def test_an_unknown_user_is_refused(storage):
    url = storage.url.replace("postgres@", "nobody_here:secret@", 1)
    with pytest.raises(DatabaseRefused, match="DATABASE_URL: the server refused user 'nobody_here'") as refused:
        await Database.open(url)
    assert "secret" not in str(refused.value)


async def test_a_new_database_gets_the_whole_schema_and_its_version(storage):
    db = await storage.open()
    await db.close()
    conn = await raw(storage)
    assert await conn.fetchval("SELECT version FROM tally_version") == SCHEMA_VERSION
    tables = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    await conn.close()
    assert {"members", "wallets", "ledger", "cases", "case_reasons", "guild_settings", "modlog_channels"} <= tables


async def test_a_database_from_a_newer_tally_is_refused_and_left_untouched(storage):
    conn = await raw(storage)
    await conn.execute("CREATE TABLE tally_version (version INTEGER NOT NULL); INSERT INTO tally_version VALUES (99)")
    with pytest.raises(DatabaseRefused, match="newer Tally"):
        await storage.open()
    assert await conn.fetchval("SELECT version FROM tally_version") == 99
    assert await conn.fetchval("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'") == 1
    await conn.close()


async def test_a_database_of_other_tables_without_a_tally_version_is_refused_and_left_untouched(storage):
    conn = await raw(storage)
    await conn.execute("CREATE TABLE users (user_id BIGINT PRIMARY KEY, xp INTEGER, level INTEGER)")
    with pytest.raises(DatabaseRefused, match="holds tables Tally did not create \\(users\\)"):
        await storage.open()
    assert [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")] == ["users"]
    await conn.close()


async def test_a_damaged_schema_is_refused_naming_what_is_missing(storage):
    db = await storage.open()
    await db.close()
    conn = await raw(storage)
    await conn.execute("ALTER TABLE members DROP COLUMN first_seen")
    await conn.close()
    with pytest.raises(DatabaseRefused, match="lacks column members.first_seen"):
        await storage.open()


async def test_a_foundation_database_is_upgraded_to_coins_and_cases_keeping_everything(storage):
    conn = await raw(storage)
    await conn.execute(V1_SCHEMA.read_text())
    await conn.execute("INSERT INTO members VALUES ($1, 42, 250, 'alice', 1700000000)", GUILD)
    await conn.execute("INSERT INTO guild_settings VALUES ($1, '?')", GUILD)
    db = await storage.open()
    assert await db.member_xp(GUILD, 42) == 250
    assert await db.prefixes() == {GUILD: "?"}
    assert await db.grant(GUILD, 42, "alice", 5, "give", 1) == 5
    await db.close()
    assert await conn.fetchval("SELECT version FROM tally_version") == 2
    await conn.close()


async def test_a_failing_migration_rolls_back_with_its_version_bump(storage):
    conn = await raw(storage)
    await conn.execute(V1_SCHEMA.read_text())
    broken = {1: "CREATE TABLE wallets (x BIGINT); UPDATE tally_version SET version = 2; NOT SQL;"}
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await storage.open(migrations=broken)
    assert await conn.fetchval("SELECT version FROM tally_version") == 1
    assert await conn.fetchval("SELECT to_regclass('wallets')") is None
    await conn.close()


async def test_processes_starting_at_once_on_an_empty_database_create_the_schema_once(storage):
    opened = await asyncio.gather(*(storage.open() for _ in range(4)))
    for db in opened:
        await db.set_prefix(GUILD, "?")
        await db.close()
    conn = await raw(storage)
    assert await conn.fetchval("SELECT COUNT(*) FROM tally_version") == 1
    await conn.close()


async def test_a_running_bot_is_visible_to_tools_and_shards_share_the_database(storage):
    first = await storage.open(exclusive=True)
    second = await storage.open(exclusive=True)  # another shard process: allowed on PostgreSQL
    conn = await raw(storage)
    assert await postgres.bot_is_running(conn)
    await first.close()
    assert await postgres.bot_is_running(conn)
    await second.close()
    assert not await postgres.bot_is_running(conn)
    await conn.close()


async def test_the_log_never_shows_the_password(storage):
    url = storage.url.replace("postgres@", "postgres:hunter2@", 1)  # trust authentication ignores it
    db = await Database.open(url)
    assert "hunter2" not in db.description and db.description.startswith("PostgreSQL database postgresql://postgres@")
    await db.close()
