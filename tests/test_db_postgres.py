"""The PostgreSQL database itself: DATABASE_URL refusals, schema promises, start-up races, the running-bot lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from db import SCHEMA_VERSION, Database, DatabaseRefused, DatabaseUnavailable, XpGain
from storage import postgres
from storage.levels import new_flush_id
from tests.conftest import Storage, postgres_url
from xp import XpTracker

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


async def test_a_read_only_database_is_refused_saying_so(storage):
    conn = await raw(storage)
    name = await conn.fetchval("SELECT current_database()")
    await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    await conn.close()
    with pytest.raises(DatabaseRefused, match="DATABASE_URL: the database at .* is read-only .*point DATABASE_URL"):
        await storage.open()


async def test_a_postgres_scheme_url_is_the_same_as_postgresql(storage):
    db = await Database.open(storage.url.replace("postgresql://", "postgres://", 1))
    try:
        await db.add_xp([XpGain(GUILD, 1, 15, "ana", 0)])
        assert db.dialect == "postgres" and await db.member_xp(GUILD, 1) == 15
    finally:
        await db.close()


async def test_a_new_database_gets_the_whole_schema_and_its_version(storage):
    db = await storage.open()
    await db.close()
    conn = await raw(storage)
    assert await conn.fetchval("SELECT version FROM tally_version") == SCHEMA_VERSION
    tables = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    await conn.close()
    assert {"members", "wallets", "ledger", "cases", "case_reasons", "guild_settings"} <= tables


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
    assert await db.stored_settings() == {GUILD: {"prefix": "?"}}
    assert await db.grant(GUILD, 42, "alice", 5, "give", 1) == 5
    await db.close()
    assert await conn.fetchval("SELECT version FROM tally_version") == SCHEMA_VERSION
    await conn.close()


async def test_a_failing_migration_rolls_back_with_its_version_bump(storage):
    conn = await raw(storage)
    await conn.execute(V1_SCHEMA.read_text())
    broken = {
        **postgres.numbered_scripts(postgres.MIGRATIONS_DIR),
        1: "CREATE TABLE wallets (x BIGINT); UPDATE tally_version SET version = 2; NOT SQL;",
    }
    with pytest.raises(DatabaseRefused, match="refused to prepare Tally's tables .*syntax error.*nothing was changed"):
        await storage.open(migrations=broken)
    assert await conn.fetchval("SELECT version FROM tally_version") == 1
    assert await conn.fetchval("SELECT to_regclass('wallets')") is None
    await conn.close()


async def test_a_user_without_rights_on_the_database_gets_one_line(storage):
    conn = await raw(storage)
    role = "tally_weak_" + storage.url.rsplit("_", 1)[1]  # one of this test's own
    await conn.execute(f"CREATE ROLE {role} LOGIN")  # a name made here, never input
    try:
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        url = storage.url.replace("postgres@", f"{role}:pw@", 1)
        with pytest.raises(DatabaseRefused, match="permission denied .*createdb -O USER DBNAME") as refused:
            await Database.open(url)
        assert ":pw@" not in str(refused.value)
    finally:
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")
        await conn.close()


async def test_an_empty_version_table_is_refused_as_unrecognised(storage):
    conn = await raw(storage)
    await conn.execute("CREATE TABLE tally_version (version INTEGER)")
    await conn.close()
    with pytest.raises(DatabaseRefused, match="tally_version table without exactly one version"):
        await storage.open()


async def test_processes_starting_at_once_on_an_empty_database_create_the_schema_once(storage):
    opened = await asyncio.gather(*(storage.open() for _ in range(4)))
    for db in opened:
        await db.set_setting(GUILD, "prefix", "?")
        await db.close()
    conn = await raw(storage)
    assert await conn.fetchval("SELECT COUNT(*) FROM tally_version") == 1
    await conn.close()


async def test_each_shard_runs_in_one_process_only_and_all_processes_agree_on_the_count(storage):
    first = await storage.open(exclusive=True, shards=(4, (0, 1)))
    second = await storage.open(exclusive=True, shards=(4, (2, 3)))  # the other half: welcome
    with pytest.raises(DatabaseRefused, match="already runs shards 0,1,2,3, and this one would run shards 1"):
        await storage.open(exclusive=True, shards=(4, (1,)))
    with pytest.raises(DatabaseRefused, match="already runs shards .*, and this one would run every shard"):
        await storage.open(exclusive=True)
    await first.close()
    with pytest.raises(DatabaseRefused, match="have SHARD_COUNT=4, this one 2: every process of one bot needs"):
        await storage.open(exclusive=True, shards=(2, (0,)))
    again = await storage.open(exclusive=True, shards=(4, (0, 1)))  # released when the first stopped
    await again.close()
    await second.close()
    whole = await storage.open(exclusive=True)  # one process with every shard
    with pytest.raises(DatabaseRefused, match="already runs every shard"):
        await storage.open(exclusive=True)
    await whole.close()


async def test_a_running_bot_keeps_copy_data_out_and_a_copy_keeps_bots_out(storage):
    bot = await storage.open(exclusive=True)
    tool = await storage.open()
    assert not await tool._store.keep_bots_out()
    await bot.close()
    assert await tool._store.keep_bots_out()
    with pytest.raises(DatabaseRefused, match="copy-data is copying .* right now"):
        await storage.open(exclusive=True)
    await tool.close()
    bot = await storage.open(exclusive=True)
    await bot.close()


async def test_the_log_never_shows_the_password(storage):
    url = storage.url.replace("postgres@", "postgres:hunter2@", 1)  # trust authentication ignores it
    db = await Database.open(url)
    assert "hunter2" not in db.description and db.description.startswith("PostgreSQL database postgresql://postgres@")
    await db.close()


async def test_a_batch_sent_again_under_its_flush_id_counts_once(storage):
    db = await storage.open()
    gains = [XpGain(GUILD, 1, 10, "alice", 0, 3)]
    flush_id = new_flush_id()
    for _ in range(3):
        await db.add_xp(gains, flush_id=flush_id)
    await db.add_xp(gains, flush_id=new_flush_id())  # another batch
    assert await db.member_xp(GUILD, 1) == 20
    assert await db.balance(GUILD, 1) == 6
    assert len(await db.movements(GUILD, 1)) == 2
    await db.close()


class LostReply(Database):
    """The real database, whose first flush commits but whose reply never arrives (a cut connection)."""

    lost = 0

    async def add_xp(self, gains, flush_id=None):
        await super().add_xp(gains, flush_id)
        if not self.lost:
            self.lost += 1
            raise DatabaseUnavailable("the connection closed before the reply (ConnectionResetError)")


async def test_a_flush_whose_reply_was_lost_is_sent_again_and_counts_once(storage):
    db = await LostReply.open(storage.url)
    tracker = XpTracker(db, xp_per_message=5, cooldown_seconds=0, flush_seconds=1)
    await tracker.award(GUILD, 1, "alice")
    await tracker.award(GUILD, 2, "bob")
    with pytest.raises(DatabaseUnavailable):
        await tracker.flush()
    assert tracker.pending_count == 2  # held, as far as Tally knows
    await tracker.award(GUILD, 1, "alice")  # and chat goes on
    assert await tracker.flush() == 2
    assert sorted(await db.guild_xp(GUILD)) == [(1, 10), (2, 5)]  # the lost batch once, then the new one
    assert tracker.pending_count == 0
    await db.close()
