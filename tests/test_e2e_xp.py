"""End to end: XP earned by chatting, against the real bot.py and the fake Discord."""

from __future__ import annotations

import pytest

from tests.fake_discord import SEND_MESSAGES, Overwrite
from tests.helpers import field


async def test_chatting_earns_xp_that_is_shown_and_stored(world, tally, storage):
    bot = await tally()
    for text in ("hello", "how is everyone", "nice"):
        await world.say(world.alice, text)
    post = await world.ask(world.alice, "!level")
    assert field(post, "Total XP") == "15"
    assert await bot.stop() == 0
    assert await storage.xp(world.guild.id) == {world.alice.id: 15}
    assert await storage.rows("SELECT name FROM members") == [("alice",)]


async def test_chat_counted_from_the_gateway_payload_matches_chat_counted_from_a_message(world, tally, storage):
    # The first message reaches the bot while the server's board is still being read (discord.py's Message and
    # on_message count it); the rest are counted from the payload. Each once, under the member's shown name.
    carol = world.fake.add_member(world.guild, "carol_user", nick="Carol the Great")
    bot = await tally()
    for number in range(25):  # 5 XP each: level 2 at 100, announced from the payload path
        await world.say(carol, f"message {number}")
    announcement = await world.fake.wait_for_post(timeout=10)
    assert announcement.content == f"<@{carol.id}> reached level 2!" and announcement.pings["users"] == [carol.id]
    assert field(await world.ask(carol, "!level"), "Total XP") == "125"
    assert await bot.stop() == 0
    assert await storage.xp(world.guild.id) == {carol.id: 125}
    assert await storage.rows("SELECT name FROM members") == [("Carol the Great",)]


async def test_cooldown_gives_xp_once_per_window(world, tally):
    await tally(XP_COOLDOWN_SECONDS="60")
    for text in ("one", "two", "three"):
        await world.say(world.alice, text)
    post = await world.ask(world.alice, "!level")
    assert field(post, "Total XP") == "5"


async def test_bots_webhooks_system_messages_dms_and_commands_earn_nothing(world, tally, storage):
    bot = await tally()
    await world.say(world.other_bot, "beep boop")
    await world.fake.say(world.general, world.alice, "via webhook", webhook_id=123456789012345678)
    await world.fake.say(world.general, world.alice, "", type_=7)  # "alice joined the server"
    await world.fake.say_in_dm(world.alice, "hello in private")
    await world.say(world.alice, "!prefix")  # a command
    await world.fake.wait_for_post(after=0)
    post = await world.ask(world.alice, "!level")
    assert "haven't earned any XP" in post.content
    assert await bot.stop() == 0
    assert await storage.xp(world.guild.id) == {}


async def test_an_unknown_command_earns_xp_and_gets_no_reply(world, tally):
    await tally()
    await world.say(world.alice, "!dance")
    post = await world.ask(world.alice, "!level")
    assert field(post, "Total XP") == "5"
    assert len(world.fake.posts) == 1


async def test_messages_that_only_look_like_commands_are_chat_and_commands_still_run(world, tally):
    """Plain chat skips command parsing: each of these must still be counted, or run, exactly as before."""
    await tally(XP_PER_MESSAGE="1")
    tally_id = world.fake.bot_user.id
    for text in ("hello !level", " !level", f"<@{world.other_bot.id}> level", f"<@{tally_id}>level", "!", "!dance"):
        await world.say(world.alice, text)  # chat: 1 XP each
    post = await world.ask(world.alice, "!level")
    assert field(post, "Total XP") == "6"
    post = await world.ask(world.alice, f"<@{tally_id}> level")  # a mention is a prefix: runs, earns nothing
    assert field(post, "Total XP") == "6"
    post = await world.ask(world.alice, f"<@!{tally_id}> prefix")
    assert post.content.startswith("My prefix here is `!`")
    assert (await world.ask(world.mod, "!prefix ?")).content.startswith("Prefix set to `?`")
    await world.say(world.alice, "!level")  # the old prefix, a moment later: chat now
    post = await world.ask(world.alice, "?level")
    assert field(post, "Total XP") == "7"
    assert len(world.fake.posts) == 5  # the five commands answered; no reply to any of the chat


async def test_level_up_is_announced_exactly_at_the_threshold_pinging_only_the_member(world, tally):
    await tally(XP_PER_MESSAGE="25")
    for _ in range(3):  # 75 XP: still level 1
        await world.say(world.alice, "chat")
    post = await world.ask(world.alice, "!level")
    assert field(post, "Level") == "1" and field(post, "Total XP") == "75"
    announcement = await world.ask(world.alice, "chat")  # 100 XP: level 2
    assert announcement.content == f"<@{world.alice.id}> reached level 2!"
    assert announcement.channel_id == world.general.id
    assert announcement.pings == {"users": [world.alice.id], "roles": [], "everyone": False}


async def test_mee6_curve_starts_at_level_0_and_announces_level_1_at_100_xp(world, tally):
    await tally(XP_PER_MESSAGE="50", LEVEL_CURVE="mee6")
    await world.say(world.alice, "chat")
    post = await world.ask(world.alice, "!level")
    assert field(post, "Level") == "0"
    announcement = await world.ask(world.alice, "chat")
    assert announcement.content.endswith("reached level 1!")


async def test_xp_is_per_guild(world, tally, storage):
    fake = world.fake
    second = fake.add_guild("Second Server")
    channel = fake.add_channel(second, "chat")
    second.members[world.alice.id] = type(second.members[second.owner_id])(world.alice)
    bot = await tally()
    await world.say(world.alice, "here")
    await world.say(world.alice, "there", channel)
    await world.say(world.alice, "again", channel)
    post = await world.ask(world.alice, "!level", channel)
    assert field(post, "Total XP") == "10"
    assert await bot.stop() == 0
    assert await storage.xp(world.guild.id) == {world.alice.id: 5}
    assert await storage.xp(second.id) == {world.alice.id: 10}


async def test_a_channel_the_bot_cannot_post_in_is_logged_and_the_bot_carries_on(world, tally):
    quiet = world.fake.add_channel(world.guild, "read-only", [Overwrite(world.fake.bot_user.id, 1, deny=SEND_MESSAGES)])
    bot = await tally(XP_PER_MESSAGE="100")
    await world.say(world.alice, "level up here", quiet)  # the announcement is refused with 50013
    await world.say(world.alice, "!level", quiet)  # so is the reply
    refused = f"/channels/{quiet.id}/messages"
    await world.fake.wait_for(lambda: [r for r in world.fake.requests if r[1] == refused][1:], what="two refused posts")
    post = await world.ask(world.alice, "!level")
    assert field(post, "Level") == "2"
    assert [p.channel_id for p in world.fake.posts] == [world.general.id]
    await bot.wait_for_log(f"cannot post in channel {quiet.id}: missing permission", count=2)
    assert await bot.stop() == 0  # the log is complete once the process has exited
    assert bot.log.count(f"cannot post in channel {quiet.id}: missing permission") == 2
    assert "Traceback" not in bot.log


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
async def test_a_clean_shutdown_saves_every_acknowledged_xp_and_exits_0(world, tally, storage, signal_name):
    import signal

    bot = await tally(XP_FLUSH_SECONDS="60")  # nothing is flushed by the timer during the test
    for _ in range(7):
        await world.say(world.bob, "message")
    post = await world.ask(world.bob, "!level")
    assert field(post, "Total XP") == "35"
    assert await bot.stop(getattr(signal, signal_name)) == 0
    assert await storage.xp(world.guild.id) == {world.bob.id: 35}
    assert "shut down cleanly" in bot.log


async def test_level_and_leaderboard_include_xp_that_is_not_yet_written(world, tally, storage):
    await tally(XP_FLUSH_SECONDS="60")
    await world.say(world.alice, "one")
    await world.say(world.alice, "two")
    post = await world.ask(world.alice, "!level")
    assert field(post, "Total XP") == "10"
    assert await storage.xp(world.guild.id) == {}  # still pending in memory
    post = await world.ask(world.alice, "!leaderboard")
    assert post.embeds[0]["description"] == "**#1** alice · level 1 · 10 XP"


async def test_sigkill_loses_at_most_the_last_flush_interval_and_nothing_else(world, tally, storage):
    bot = await tally(XP_FLUSH_SECONDS="60")
    for _ in range(2):
        await world.say(world.alice, "earlier")
    await world.ask(world.alice, "!level")
    assert await bot.stop() == 0  # a clean stop writes the 10 XP

    bot = await tally(XP_FLUSH_SECONDS="60")  # no timer flush happens during this run
    for _ in range(3):
        await world.say(world.alice, "lost")
    post = await world.ask(world.mod, "!prefix ?")  # settings are written at once
    assert post.content.startswith("Prefix set")
    post = await world.ask(world.alice, "?level")
    assert field(post, "Total XP") == "25"
    await bot.kill()  # SIGKILL: no shutdown code runs

    assert await storage.xp(world.guild.id) == {world.alice.id: 10}  # only this interval's 15 XP is gone
    assert await storage.rows("SELECT value FROM guild_settings WHERE name = 'prefix'") == [("?",)]
    await tally()
    post = await world.ask(world.alice, "?level")
    assert field(post, "Total XP") == "10"
