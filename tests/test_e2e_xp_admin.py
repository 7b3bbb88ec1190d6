"""End to end: an admin's XP tools, their audit log and undo, on each backend."""

from __future__ import annotations

import re

from tests.helpers import field, seed_xp
from tests.test_e2e_rewards import let_tally_manage_roles, roles_of

AUDIT = "SELECT number, user_id, actor_id, kind, xp_before, xp_after, reason, undone_by FROM xp_audit ORDER BY number"


def posts_since(world, count: int) -> list[str]:
    return [post.content or "" for post in world.fake.posts[count:]]


async def test_give_take_set_and_reset_change_xp_and_rank_and_log_who_when_before_after_why(world, tally, storage):
    await seed_xp(storage, world.guild.id, [(world.alice.id, 150, "alice"), (world.bob.id, 50, "bob")])
    bot = await tally()
    post = await world.ask(world.mod, "!xp give alice 30 helped at the event")
    assert post.content == ("Gave alice 30 XP: 150 → 180 XP, still level 2. Logged as #1; `!xp undo 1` reverts it.")
    post = await world.ask(world.mod, "!xp take bob 80")  # more than bob has: down to 0, never below
    assert post.content.startswith("Took 50 XP from bob: 50 → 0 XP, still level 1. Logged as #2")
    post = await world.ask(world.mod, f"!xp set {world.carol.id} 500")
    assert post.content.startswith("Set the XP of carol to 500: 0 → 500 XP, level 1 → 6. Logged as #3")
    board = await world.ask(world.alice, "!leaderboard")
    lines = board.embeds[0]["description"].split("\n")
    assert [line.split(" · ")[0] for line in lines] == ["**#1** carol", "**#2** alice"]  # bob left the board
    assert "#1 of 2" in field(await world.ask(world.carol, "!level"), "Rank")
    post = await world.ask(world.mod, "!xp reset alice spamming")
    assert post.content.startswith("Reset the XP of alice: 180 → 0 XP, level 2 → 1. Logged as #4")
    post = await world.ask(world.mod, "!xp take bob 10")
    assert post.content == "bob has 0 XP; nothing changed."
    assert await bot.stop() == 0

    mod = world.mod.id
    assert [row[:8] for row in await storage.rows(AUDIT)] == [
        (1, world.alice.id, mod, "give", 150, 180, "helped at the event", None),
        (2, world.bob.id, mod, "take", 50, 0, None, None),
        (3, world.carol.id, mod, "set", 0, 500, None, None),
        (4, world.alice.id, mod, "reset", 180, 0, "spamming", None),
    ]
    created = await storage.rows("SELECT MIN(created_at), MAX(created_at) FROM xp_audit")
    assert created[0][0] > 1_700_000_000  # when: Unix seconds
    assert await storage.xp(world.guild.id) == {world.alice.id: 0, world.bob.id: 0, world.carol.id: 500}
    await tally()  # survives a restart: alice is off the board, not ranked with 0 XP
    post = await world.ask(world.alice, "!level")
    assert post.content == "You haven't earned any XP in this server yet. Chatting earns XP."
    board = await world.ask(world.alice, "!leaderboard")
    assert board.embeds[0]["description"].count("\n") == 0  # carol alone


async def test_only_manage_server_may_change_xp_and_bad_targets_and_amounts_get_one_line(world, tally, storage):
    await tally()
    post = await world.ask(world.alice, "!xp give alice 10")
    assert post.content == "You need the Manage Server permission to do that."
    post = await world.ask(world.mod, "!xp give nobody 10")
    assert post.content == "I can't find a member or role or user ID called nobody in this server."
    post = await world.ask(world.mod, "!xp give alice -5")
    assert post.content.startswith("`amount` must be a whole number from 1 to 1,000,000,000,000.")
    post = await world.ask(world.mod, "!xp set alice 1000000000001")
    assert post.content.startswith("`amount` must be a whole number from 0 to 1,000,000,000,000.")
    post = await world.ask(world.mod, "!xp give otherbot 10")
    assert post.content == "Bots don't earn XP."
    assert await storage.rows(AUDIT) == []


async def test_admin_changes_merge_with_pending_chat_xp_and_nothing_is_lost_at_shutdown(world, tally, storage):
    bot = await tally(XP_PER_MESSAGE="10", XP_FLUSH_SECONDS="60")  # chat XP stays pending in memory
    for _ in range(3):
        await world.say(world.alice, "chat")
    post = await world.ask(world.mod, "!xp give alice 100")
    assert post.content.startswith("Gave alice 100 XP: 30 → 130 XP")
    await world.say(world.alice, "chat")
    post = await world.ask(world.mod, "!xp set alice 50")
    assert post.content.startswith("Set the XP of alice to 50: 140 → 50 XP")
    await world.say(world.alice, "chat")
    assert field(await world.ask(world.alice, "!level"), "Total XP") == "60"
    assert await bot.stop() == 0
    assert (await storage.xp(world.guild.id))[world.alice.id] == 60
    rows = await storage.rows("SELECT kind, xp_before, xp_after FROM xp_audit ORDER BY number")
    assert rows == [("give", 30, 130), ("set", 140, 50)]


async def test_reward_roles_follow_admin_changes_both_ways_and_announcing_them_is_a_setting(world, tally):
    fake = world.fake
    let_tally_manage_roles(world)
    chatty = fake.add_role(world.guild, "Chatty", position=1)
    regulars = fake.add_role(world.guild, "Regulars", position=2)
    await tally()
    await world.ask(world.mod, "!rewards add 2 Chatty")
    await world.ask(world.mod, "!rewards add 3 Regulars")
    count = len(fake.posts)
    post = await world.ask(world.mod, "!xp give alice 250")  # level 3
    assert post.content.startswith("Gave alice 250 XP: 0 → 250 XP, level 1 → 3.")
    assert roles_of(world, world.alice) == {chatty.id, regulars.id}
    await world.ask(world.mod, "!xp take alice 100")  # level 2: Regulars goes
    assert roles_of(world, world.alice) == {chatty.id}
    await world.ask(world.mod, "!xp set alice 0")  # level 1: no reward role left
    assert roles_of(world, world.alice) == set()
    await world.ask(world.alice, "!level")  # everything before it was handled
    assert not any("reached level" in text for text in posts_since(world, count))  # levelup-admin is off

    post = await world.ask(world.mod, "!settings levelup-admin on")
    assert post.content == "`levelup-admin` is now on."
    await world.ask(world.mod, "!settings levelup-role-message {mention} is now {role}!")
    announcement = await world.ask(world.mod, "!xp set alice 100")  # roles and announcement, then the reply
    assert announcement.content == f"<@{world.alice.id}> is now Chatty!"
    reply = await fake.wait_for_post(after=fake.posts.index(announcement) + 1)
    assert reply.content.startswith("Set the XP of alice to 100: 0 → 100 XP, level 1 → 2.")
    assert announcement.pings == {"users": [world.alice.id], "roles": [], "everyone": False}
    assert roles_of(world, world.alice) == {chatty.id}
    count = len(fake.posts)
    await world.ask(world.mod, "!xp reset alice")  # a level lost is never announced
    await world.ask(world.alice, "!level")
    assert roles_of(world, world.alice) == set()
    assert not any("is now" in text or "reached" in text for text in posts_since(world, count))


async def test_a_role_as_target_changes_every_member_who_has_it(world, tally, storage):
    fake = world.fake
    team = fake.add_role(world.guild, "Event Team", position=1)
    for user in (world.alice, world.bob, world.other_bot):
        world.guild.members[user.id].roles.append(team.id)
    await seed_xp(storage, world.guild.id, [(world.bob.id, 500, "bob")])
    bot = await tally()
    post = await world.ask(world.mod, '!xp give "Event Team" 40 ran the quiz')
    assert post.content == f"Gave 2 members with <@&{team.id}> 40 XP (logged as #1 to #2)."
    assert post.pings["roles"] == []  # the role is named, never pinged
    post = await world.ask(world.mod, f"!xp set <@&{team.id}> 540")  # bob has 540 already
    assert post.content == f"Set the XP of 1 member with <@&{team.id}> to 540 (logged as #3); 1 was left as they were."
    assert await bot.stop() == 0
    assert await storage.xp(world.guild.id) == {world.alice.id: 540, world.bob.id: 540}  # no bot, no carol
    rows = await storage.rows("SELECT number, user_id, reason FROM xp_audit ORDER BY number")
    assert rows[:2] == [(1, world.alice.id, "ran the quiz"), (2, world.bob.id, "ran the quiz")]


async def test_reset_server_asks_for_the_code_and_only_its_admin_can_give_it(world, tally, storage):
    await seed_xp(storage, world.guild.id, [(world.alice.id, 150, "alice"), (world.bob.id, 50, "bob")])
    bot = await tally()
    ask = await world.ask(world.mod, "!xp reset-server")
    assert "This takes the XP of all 2 members of Tally Test Server to 0." in ask.content
    code = re.search(r"`!xp reset-server (\d{6})` within 60 s", ask.content).group(1)
    wrong = await world.ask(world.mod, "!xp reset-server 000000")
    assert wrong.content == "That code is wrong or has expired; type `!xp reset-server` for a new one."
    assert (await world.ask(world.alice, f"!xp reset-server {code}")).content.startswith("You need the Manage")
    assert await storage.xp(world.guild.id) == {world.alice.id: 150, world.bob.id: 50}
    done = await world.ask(world.mod, f"!xp reset-server {code}")
    assert done.content == "Reset the XP of 2 members to 0 (logged as #1 to #2)."
    again = await world.ask(world.mod, f"!xp reset-server {code}")  # a code works once
    assert again.content.startswith("That code is wrong or has expired")
    board = await world.ask(world.alice, "!leaderboard")
    assert board.content.startswith("Nobody has earned XP in this server yet.")
    assert await bot.stop() == 0
    assert await storage.xp(world.guild.id) == {world.alice.id: 0, world.bob.id: 0}
    rows = await storage.rows("SELECT kind, xp_before, xp_after FROM xp_audit ORDER BY number")
    assert rows == [("reset-server", 150, 0), ("reset-server", 50, 0)]


async def test_history_is_newest_first_and_undo_reverts_only_what_nothing_has_followed(world, tally, storage):
    await seed_xp(storage, world.guild.id, [(world.alice.id, 100, "alice")])
    bot = await tally(XP_PER_MESSAGE="5")
    await world.ask(world.mod, "!xp give alice 50 quiz winner")  # 1
    await world.ask(world.mod, "!xp take alice 20")  # 2
    history = await world.ask(world.mod, "!xp history alice")
    lines = history.embeds[0]["description"].split("\n")
    assert lines[0].startswith("`#2` <t:") and f"**take** 150 → 130 by <@{world.mod.id}>" in lines[0]
    assert lines[1].startswith("`#1` <t:") and lines[1].endswith(
        f"**give** 100 → 150 by <@{world.mod.id}>: quiz winner"
    )
    assert history.embeds[0]["footer"]["text"].startswith("Page 1 of 1 · 2 changes")

    post = await world.ask(world.mod, "!xp undo 1")
    assert post.content == "alice's XP was changed again after #1: undo #2 first."
    post = await world.ask(world.mod, "!xp undo 2")
    assert post.content == "Undid #2: alice's XP went from 130 back to 150, still level 2 (logged as #3)."
    post = await world.ask(world.mod, "!xp undo 2")
    assert post.content == "#2 was already undone (by #3)."
    post = await world.ask(world.mod, "!xp undo 3")
    assert post.content == "#3 is itself an undo; to change alice's XP again, use `!xp set`."
    post = await world.ask(world.mod, "!xp undo 1")  # #2 no longer stands
    assert post.content == "Undid #1: alice's XP went from 150 back to 100, still level 2 (logged as #4)."
    await world.ask(world.mod, "!xp give alice 300")  # 5
    await world.say(world.alice, "chat")  # earned since
    post = await world.ask(world.mod, "!xp undo 5")
    assert post.content == (
        "alice has earned XP since #5 (it left them at 400; they have 405 now), so undoing it would lose that. "
        "Use `!xp set` instead."
    )
    post = await world.ask(world.mod, "!xp undo 99")
    assert post.content == "There is no XP change #99 in this server."
    assert field(await world.ask(world.alice, "!level"), "Total XP") == "405"
    assert await bot.stop() == 0
    rows = await storage.rows(
        "SELECT number, kind, xp_before, xp_after, reason, undone_by FROM xp_audit ORDER BY number"
    )
    assert rows == [
        (1, "give", 100, 150, "quiz winner", 4),
        (2, "take", 150, 130, None, 3),
        (3, "undo", 130, 150, "undo of #2", None),
        (4, "undo", 150, 100, "undo of #1", None),
        (5, "give", 100, 400, None, None),
    ]


async def test_a_member_who_left_is_changed_and_shown_by_id_under_their_last_name(world, tally, storage):
    await seed_xp(storage, world.guild.id, [(world.alice.id, 150, "alice")])
    await tally()
    await world.fake.member_leave(world.guild, world.alice)
    post = await world.ask(world.mod, f"!xp reset {world.alice.id} left the server")
    assert post.content.startswith("Reset the XP of alice: 150 → 0 XP")
    history = await world.ask(world.mod, f"!xp history {world.alice.id}")
    assert history.embeds[0]["title"] == "XP history: alice"
    post = await world.ask(world.mod, f"!xp history {world.bob.id}")
    assert post.content == "bob's XP has only ever changed by chatting."


async def test_a_change_to_many_members_posts_one_line_rather_than_an_announcement_each(world, tally, storage):
    fake = world.fake
    crowd = fake.add_role(world.guild, "Crowd", position=1)
    for i in range(30):
        fake.add_member(world.guild, f"member{i}", roles=[crowd])
    await tally()
    await world.ask(world.mod, "!settings levelup-admin on")
    summary = await world.ask(world.mod, "!xp give Crowd 100")
    assert summary.content == "30 members reached a new level."
    reply = await fake.wait_for_post(after=fake.posts.index(summary) + 1)
    assert reply.content == f"Gave 30 members with <@&{crowd.id}> 100 XP (logged as #1 to #30)."
    await world.ask(world.alice, "!level")
    assert not any("reached level" in text for text in posts_since(world, fake.posts.index(reply)))
    assert len(await storage.rows("SELECT number FROM xp_audit")) == 30


async def test_an_id_that_is_not_a_user_is_not_a_target(world, tally, storage):
    await tally()
    channel = world.general.id
    post = await world.ask(world.mod, f"!xp give <#{channel}> 10")
    assert post.content == f"I can't find a member or role or user ID called <#{channel}> in this server."
    post = await world.ask(world.mod, "!xp give 12345 10")
    assert post.content == "I can't find a member or role or user ID called 12345 in this server."
    assert await storage.rows("SELECT number FROM xp_audit") == []
