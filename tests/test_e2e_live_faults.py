"""End to end: what a live bot meets (rate limits on replies, Discord's own 5xx, a gateway that drops or
ends the session, a disk that fills up), on each backend."""

from __future__ import annotations

import resource

import pytest

from tests.helpers import field


@pytest.mark.parametrize("scope", ["user", "shared"])
async def test_replies_past_discords_rate_limit_arrive_late_and_none_is_lost(world, tally, scope):
    fake = world.fake
    await tally()
    fake.limit("message_post", 2, 1.0, scope)  # two posts a second in a channel
    for _ in range(6):
        await world.say(world.alice, "!prefix")
    await fake.wait_for(lambda: len(fake.posts) >= 6, 20, "six replies")
    assert [post.content.startswith("My prefix here is `!`") for post in fake.posts] == [True] * 6
    if scope == "shared":  # no headers warned of it: Discord's 429 and its retry_after did
        assert fake.rate_limited and fake.rate_limited[0].bucket == "message_post"
    assert not any(request.early for request in fake.bucket_requests)  # each 429's retry_after honoured


async def test_replies_past_discords_global_rate_limit_arrive_late_and_none_is_lost(world, tally):
    fake = world.fake
    await tally()
    fake.limit("global", 2, 1.0)  # two requests a second from the whole bot, whatever the route
    for _ in range(5):
        await world.say(world.alice, "!prefix")
    await fake.wait_for(lambda: len(fake.posts) >= 5, 20, "five replies")
    assert [post.content.startswith("My prefix here is `!`") for post in fake.posts] == [True] * 5
    assert any(hit.is_global for hit in fake.rate_limited)  # Discord said so at least once ...
    assert not any(request.early for request in fake.bucket_requests)  # ... and Tally waited as told


async def test_a_level_up_announcement_past_the_rate_limit_still_arrives(world, tally, storage):
    fake = world.fake
    await tally(XP_PER_MESSAGE="100")
    fake.limit("message_post", 1, 1.0)
    await world.say(world.alice, "!prefix")
    await world.say(world.alice, "chat")  # level 2, announced in the same channel
    await fake.wait_for(lambda: len(fake.posts) >= 2, 20, "the reply and the announcement")
    assert any(post.content == f"<@{world.alice.id}> reached level 2!" for post in fake.posts)


async def test_discords_5xx_on_a_reply_is_retried_and_the_bot_carries_on(world, tally):
    fake = world.fake
    bot = await tally()
    fake.fail("POST", f"/channels/{world.general.id}/messages", 502, times=2)
    post = await world.ask(world.alice, "!prefix", timeout=30)  # discord.py tries again after a 502 (1 s, 3 s)
    assert post.content.startswith("My prefix here is `!`")
    await world.say(world.alice, "chat")
    assert field(await world.ask(world.alice, "!level"), "Total XP") == "5"  # carried on
    assert await bot.stop() == 0
    assert "Traceback" not in bot.log


async def test_a_gateway_dropped_mid_burst_resumes_and_counts_every_message_once(world, tally, storage):
    fake = world.fake
    bot = await tally(XP_FLUSH_SECONDS="60", XP_PER_MESSAGE="1")  # the XP stays in memory across the blip
    for number in range(30):
        if number == 10:
            await fake.drop_connection()  # the next ten wait for the RESUME, replayed from the last sequence seen
        if number == 20:
            await fake.wait_for(lambda: fake.resumes == 1, what="the bot to resume")
        await world.say(world.alice, f"message {number}")
    assert field(await world.ask(world.alice, "!level"), "Total XP") == "30"  # 30 messages, each once
    assert len(fake.identifies) == 1
    assert await bot.stop() == 0
    assert await storage.xp(world.guild.id) == {world.alice.id: 30}


async def test_invalid_session_makes_the_bot_identify_again_and_keep_counting(world, tally, storage):
    fake = world.fake
    bot = await tally(XP_FLUSH_SECONDS="60")
    await world.say(world.alice, "before")
    assert field(await world.ask(world.alice, "!level"), "Total XP") == "5"
    fake.ready_session = None
    await fake.invalidate_sessions()  # Discord ended the session: it cannot be resumed
    await fake.wait_until_ready()
    assert len(fake.identifies) == 2 and fake.resumes == 0
    await world.say(world.alice, "after")
    assert field(await world.ask(world.alice, "!level"), "Total XP") == "10"  # nothing held in memory was lost
    assert await bot.stop() == 0
    assert await storage.xp(world.guild.id) == {world.alice.id: 10}
    assert "Traceback" not in bot.log


async def test_a_resumable_invalid_session_resumes_and_misses_nothing(world, tally):
    fake = world.fake
    await tally()
    await fake.invalidate_sessions(resumable=True)
    await world.say(world.alice, "said while the bot reconnects")
    await fake.wait_for(lambda: fake.resumes == 1, what="the bot to resume")
    assert field(await world.ask(world.alice, "!level"), "Total XP") == "5"
    assert len(fake.identifies) == 1


@pytest.mark.backends("sqlite")  # a file size limit on Tally's process cannot reach a PostgreSQL server's disk
async def test_a_full_disk_during_a_flush_keeps_the_xp_and_writes_it_when_space_returns(world, tally, storage):
    bot = await tally(XP_FLUSH_SECONDS="0.2", LOG_LEVEL="DEBUG")
    await world.say(world.alice, "before")
    await bot.wait_for_log("saved XP of 1 members")
    # no file of Tally's may grow past 4 KiB from now: the next write to the database's journal fails
    resource.prlimit(bot.process.pid, resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    await world.say(world.alice, "while the disk is full")
    line = await bot.wait_for_log("could not save XP")
    assert "could not be written: disk I/O error; is the disk full?); keeping it and retrying" in line
    await bot.wait_for_log("saving XP of 1 members", count=4)  # it went on trying ...
    await world.say(world.alice, "still full")
    assert field(await world.ask(world.alice, "!level"), "Total XP") == "15"  # ... and kept every gain
    resource.prlimit(bot.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    await bot.wait_for_log("saving XP works again")
    assert await storage.xp(world.guild.id) == {world.alice.id: 15}  # written while the bot runs
    assert await bot.stop() == 0
    assert bot.log.count("could not save XP") == 1  # one line for the whole outage
    assert "Traceback" not in bot.log
