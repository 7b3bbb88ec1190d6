"""End to end: what a live bot meets on Discord's side (rate limits on replies, Discord's own 5xx), on each backend."""

from __future__ import annotations

from tests.helpers import field


async def test_replies_past_discords_rate_limit_arrive_late_and_none_is_lost(world, tally):
    fake = world.fake
    await tally()
    fake.limit("message_post", 2, 1.0)  # two posts a second in a channel
    for _ in range(6):
        await world.say(world.alice, "!prefix")
    await fake.wait_for(lambda: len(fake.posts) >= 6, 20, "six replies")
    assert [post.content.startswith("My prefix here is `!`") for post in fake.posts] == [True] * 6
    assert not any(request.early for request in fake.bucket_requests)  # each 429's retry_after honoured


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
