"""End to end on PostgreSQL: DATABASE_URL at start-up, a server that goes away and comes back, shard processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from tests.fake_discord import Member, shard_of
from tests.helpers import field

pytestmark = pytest.mark.backends("postgres")


@asynccontextmanager
async def server_away(storage) -> AsyncIterator[str]:
    """The server stops letting Tally in and ends the connections it has, until the block ends."""
    database = storage.url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(storage.url.rsplit("/", 1)[0] + "/postgres")
    try:
        await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')  # a name the test made
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database)
        yield database
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
        await admin.close()


@pytest.mark.parametrize(
    "url, says",
    [
        (
            "postgresql://postgres:hunter2@127.0.0.1:1/tally",
            "DATABASE_URL: cannot reach PostgreSQL at postgresql://postgres@127.0.0.1:1/tally",
        ),
        ("{server}/no_such_tally_db", "DATABASE_URL names database 'no_such_tally_db', which does not exist"),
        ("postgresql://postgres:hunter2@127.0.0.1:5432", "DATABASE_URL names no database"),
        ("postgresql://postgres:hunter2@127.0.0.1:54x32/tally", "DATABASE_URL has a port that is not a number"),
    ],
)
async def test_a_database_url_tally_cannot_use_stops_start_up_with_one_line_and_exit_2(
    world, tally, storage, url, says
):
    server = storage.url.rsplit("/", 1)[0].replace("postgres@", "postgres:hunter2@", 1)
    bot = await tally(wait_ready=False, DATABASE_URL=url.format(server=server))
    assert await bot.wait() == 2
    assert says in bot.log
    assert len([line for line in bot.log.splitlines() if "DATABASE_URL" in line]) == 1
    assert "hunter2" not in bot.log and "Traceback" not in bot.log
    assert world.fake.identifies == []  # it never logged in


async def test_with_both_database_url_and_database_path_the_url_wins_and_the_log_says_so(
    world, tally, storage, tmp_path
):
    bot = await tally(DATABASE_PATH="data/other.db")
    await world.say(world.alice, "hello")
    await world.ask(world.alice, "!level")
    assert await bot.stop() == 0
    assert "DATABASE_URL and DATABASE_PATH are both set: DATABASE_URL wins" in bot.log
    assert "using the PostgreSQL database postgresql://postgres@" in bot.log
    assert await storage.xp(world.guild.id) == {world.alice.id: 5}
    assert not (tmp_path / "data" / "other.db").exists()


async def test_while_the_server_is_away_chat_keeps_earning_commands_say_so_and_nothing_is_lost(world, tally, storage):
    bot = await tally(XP_FLUSH_SECONDS="0.2")
    await world.say(world.alice, "first")
    await world.ask(world.alice, "!level")  # the board is loaded, the first XP on its way
    async with server_away(storage):
        for _ in range(4):
            await world.say(world.alice, "still chatting")
        await world.say(world.bob, "me too")
        await bot.wait_for_log("could not save XP")
        post = await world.ask(world.bob, "!daily")
        assert post.content == "The database is unavailable right now; try again in a minute."
        post = await world.ask(world.alice, "!level")  # answered from memory
        assert field(post, "Total XP") == "25"
        post = await world.ask(world.alice, "!leaderboard")  # so is the board
        assert "alice" in post.embeds[0]["description"] and "25 XP" in post.embeds[0]["description"]
    await bot.wait_for_log("saving XP works again", timeout=30)
    assert await storage.xp(world.guild.id) == {world.alice.id: 25, world.bob.id: 5}
    await bot.wait_for_log("took the claim again", timeout=30)  # its shard locks went with the old connection
    tool = await storage.open()
    assert not await tool._store.keep_bots_out()  # a copy-data would see the bot again
    await tool.close()
    post = await world.ask(world.bob, "!daily")
    assert post.content.startswith("You claimed")
    assert await bot.stop() == 0
    assert "Traceback" not in bot.log


async def test_a_shutdown_while_the_server_is_away_keeps_the_xp_and_the_next_start_adds_it(
    world, tally, storage, tmp_path
):
    bot = await tally(XP_FLUSH_SECONDS="60", SHUTDOWN_SAVE_SECONDS="2")
    await world.ask(world.alice, "!level")
    async with server_away(storage) as database:
        for _ in range(3):
            await world.say(world.alice, "chatting while the server is away")
        await world.ask(world.alice, "!level")  # the three messages were counted
        assert await bot.stop() == 1
        [kept] = (tmp_path / "data").glob(f"postgres-127.0.0.1-5432-{database}.unsaved-*.json")
    assert "NOT SAVED: 15 XP of 1 members" in bot.log
    await tally()
    assert not kept.exists()
    assert await storage.xp(world.guild.id) == {world.alice.id: 15}


async def test_two_shard_processes_share_one_database_each_counting_its_own_guilds_once(world, tally, storage):
    fake = world.fake
    fake.shard_count = 2
    first = world.guild
    second = fake.add_guild("Second Server", owner=world.owner, shard=(1 - shard_of(first.id, 2), 2))
    lounge = fake.add_channel(second, "lounge")
    for user in (world.alice, world.bob):
        second.members[user.id] = Member(user)
    second.members[fake.bot_user.id] = Member(fake.bot_user)
    shards = {shard_of(first.id, 2): first, shard_of(second.id, 2): second}

    bots = {}
    for shard_id in (0, 1):
        bots[shard_id] = await tally(wait_ready=False, SHARD_COUNT="2", SHARD_IDS=str(shard_id))
        await fake.wait_until_ready(shard_id=shard_id)
    for bot in bots.values():
        await bot.wait_for_log("connected as")

    for _ in range(3):
        await world.say(world.alice, "hello first")
    await world.fake.say(lounge, world.alice, "hello second")
    await world.fake.say(lounge, world.bob, "hello second")
    post = await world.ask(world.alice, "!leaderboard")
    assert "alice" in post.embeds[0]["description"] and "15 XP" in post.embeds[0]["description"]
    count = len(fake.posts)
    await fake.say(lounge, world.alice, "!leaderboard")
    post = await fake.wait_for_post(after=count, channel_id=lounge.id)
    lines = post.embeds[0]["description"].split("\n")
    assert len(lines) == 2 and all("5 XP" in line for line in lines)
    assert len(fake.posts) == count + 1  # one answer: only the shard that owns the guild replied

    for bot in bots.values():
        assert await bot.stop() == 0
    assert await storage.xp(first.id) == {world.alice.id: 15}
    assert await storage.xp(second.id) == {world.alice.id: 5, world.bob.id: 5}
    for shard_id, bot in bots.items():
        assert f"on shards {shard_id} of 2 (shard {shard_id}: 1 servers)" in bot.log
        assert shards[shard_id].id  # each process saw exactly its own guild


async def test_a_second_process_for_shards_already_running_stops_with_one_line_and_exit_2(world, tally, storage):
    first = await tally()
    second = await tally(wait_ready=False)  # the same settings: a unit started twice, say
    assert await second.wait() == 2
    assert "another Tally process on" in second.log and "already runs every shard" in second.log
    assert "Traceback" not in second.log
    post = await world.ask(world.alice, "!prefix")  # the first answers, alone
    assert post.content.startswith("My prefix here is")
    assert await first.stop() == 0


async def test_one_process_runs_every_recommended_shard_when_none_are_set(world, tally, storage):
    world.fake.shard_count = 2
    bot = await tally(wait_ready=False)
    for shard_id in (0, 1):
        await world.fake.wait_until_ready(shard_id=shard_id)
    await bot.wait_for_log("connected as")
    post = await world.ask(world.alice, "!prefix")
    assert post.content.startswith("My prefix here is `!`")
    assert "on shards 0,1 of 2" in bot.log


@pytest.mark.backends("sqlite")
async def test_sqlite_refuses_to_be_one_of_several_shard_processes(world, tally):
    bot = await tally(wait_ready=False, SHARD_COUNT="2", SHARD_IDS="0")
    assert await bot.wait() == 2
    assert "SQLite is for one process: set DATABASE_URL" in bot.log
    assert world.fake.identifies == []
