"""End to end: !level, !leaderboard, !prefix, help and errors as members see them."""

from __future__ import annotations

from tests.fake_discord import EMBED_LINKS, Member, Overwrite
from tests.helpers import field, seed_xp


async def test_level_shows_level_xp_progress_and_rank(world, tally, storage):
    await seed_xp(storage, world.guild.id, [(world.alice.id, 250, "alice"), (world.bob.id, 900, "bob")])
    await tally()
    post = await world.ask(world.alice, "!level")
    embed = post.embeds[0]
    assert embed["title"] == "alice"
    assert field(post, "Level") == "3"
    assert field(post, "Total XP") == "250"
    assert field(post, "Rank") == "#2 of 2"
    progress = field(post, "Progress to level 4")
    assert "50 / 100 XP (50 XP to go)" in progress
    assert "▰▰▰▰▰▰▱▱▱▱▱▱" in progress


async def test_level_of_another_member_by_mention_id_and_name(world, tally, storage):
    await seed_xp(storage, world.guild.id, [(world.bob.id, 120, "bob")])
    await tally()
    for argument in (f"<@{world.bob.id}>", str(world.bob.id), "bob"):
        post = await world.ask(world.alice, f"!level {argument}")
        assert post.embeds[0]["title"] == "bob", argument
        assert field(post, "Total XP") == "120"


async def test_level_by_name_finds_a_member_not_yet_in_the_cache(world, tally, tmp_path):
    late = world.fake.add_user("latecomer")
    await tally()
    world.guild.members[late.id] = Member(late)  # joined after the bot connected: only a gateway query finds them
    post = await world.ask(world.alice, "!level latecomer")
    assert post.content == "latecomer hasn't earned any XP in this server yet. Chatting earns XP."


async def test_level_for_a_member_without_xp_and_for_an_unknown_member(world, tally):
    await tally()
    post = await world.ask(world.alice, "!level carol")
    assert post.content == "carol hasn't earned any XP in this server yet. Chatting earns XP."
    post = await world.ask(world.alice, "!level nobody_by_that_name")
    assert post.content == "I can't find a member called nobody\\_by\\_that\\_name in this server."
    post = await world.ask(world.alice, "!level otherbot")
    assert post.content == "otherbot is a bot; bots don't earn XP."


async def test_leaderboard_orders_by_xp_with_ties_to_the_lower_user_id(world, tally, storage):
    low, high = sorted([world.alice.id, world.bob.id])
    names = {world.alice.id: "alice", world.bob.id: "bob"}
    await seed_xp(
        storage,
        world.guild.id,
        [(high, 300, names[high]), (low, 300, names[low]), (world.carol.id, 500, "carol"), (world.mod.id, 10, "mod")],
    )
    await tally()
    post = await world.ask(world.alice, "!leaderboard")
    lines = post.embeds[0]["description"].split("\n")
    assert lines == [
        "**#1** carol · level 6 · 500 XP",
        f"**#2** {names[low]} · level 4 · 300 XP",
        f"**#3** {names[high]} · level 4 · 300 XP",
        "**#4** mod · level 1 · 10 XP",
    ]
    assert "Page 1 of 1" in post.embeds[0]["footer"]["text"]
    # !level agrees with the board on every rank, ties included
    for rank, user_id in enumerate([world.carol.id, low, high, world.mod.id], start=1):
        level = await world.ask(world.alice, f"!level {user_id}")
        assert field(level, "Rank") == f"#{rank} of 4"


async def test_leaderboard_pages_and_out_of_range_page(world, tally, storage):
    rows = [(10_000 + i, 1000 - i, f"member{i:02d}") for i in range(23)]
    await seed_xp(storage, world.guild.id, rows)
    await tally()
    page2 = await world.ask(world.alice, "!leaderboard 2")
    lines = page2.embeds[0]["description"].split("\n")
    assert len(lines) == 10
    assert lines[0].startswith("**#11** member10 ")
    assert "Page 2 of 3" in page2.embeds[0]["footer"]["text"]
    page3 = await world.ask(world.bob, "!leaderboard 3")
    assert len(page3.embeds[0]["description"].split("\n")) == 3
    post = await world.ask(world.carol, "!leaderboard 4")
    assert post.content == "There are only 3 pages right now."


async def test_departed_members_are_listed_by_their_last_known_name(world, tally, storage):
    await seed_xp(storage, world.guild.id, [(999_999_999_999, 50, "Long Gone")])
    await tally()
    post = await world.ask(world.alice, "!leaderboard")
    assert post.embeds[0]["description"] == "**#1** Long Gone · level 1 · 50 XP"


async def test_a_member_who_leaves_keeps_their_place_under_their_last_name(world, tally):
    await tally()
    await world.say(world.carol, "hi, bye")
    await world.fake.remove_member(world.guild, world.carol)
    post = await world.ask(world.alice, "!leaderboard")
    assert post.embeds[0]["description"] == "**#1** carol · level 1 · 5 XP"


async def test_empty_leaderboard_gets_a_friendly_line(world, tally):
    await tally()
    post = await world.ask(world.alice, "!leaderboard")
    assert post.content.startswith("Nobody has earned XP in this server yet.")


async def test_leaderboard_rejects_a_bad_page_with_usage(world, tally):
    await tally()
    post = await world.ask(world.alice, "!leaderboard abc")
    assert post.content == "That isn't a valid `page`. Usage: `!leaderboard [page=1]`"
    post = await world.ask(world.bob, "!leaderboard 0")
    assert post.content == "`page` must be a whole number from 1 to 100,000. Usage: `!leaderboard [page=1]`"


async def test_prefix_is_shown_to_anyone(world, tally):
    await tally()
    post = await world.ask(world.alice, "!prefix")
    assert post.content.startswith("My prefix here is `!`")


async def test_prefix_change_needs_manage_server(world, tally):
    await tally()
    post = await world.ask(world.alice, "!prefix ?")
    assert post.content == "You need the Manage Server permission to do that."
    post = await world.ask(world.alice, "!prefix reset")
    assert post.content == "You need the Manage Server permission to do that."
    post = await world.ask(world.alice, "!prefix")
    assert "`!`" in post.content


async def test_new_prefix_works_the_old_one_stops_and_reset_restores_it(world, tally, storage):
    bot = await tally()
    post = await world.ask(world.mod, "!prefix ?")
    assert post.content.startswith("Prefix set to `?`")
    count = len(world.fake.posts)
    await world.say(world.alice, "!level")  # the old prefix is just chat now (it earns XP)
    post = await world.ask(world.alice, "?level")
    assert field(post, "Total XP") == "5"
    assert len(world.fake.posts) == count + 1
    post = await world.ask(world.owner, "?prefix reset")
    assert post.content == "Prefix reset to `!`."
    post = await world.ask(world.alice, "!prefix")
    assert post.content.startswith("My prefix here is `!`")
    assert await bot.stop() == 0
    assert await storage.rows("SELECT * FROM guild_settings") == []


async def test_invalid_prefixes_are_refused_with_a_reason(world, tally):
    await tally()
    cases = {
        "!prefix toolong": "a prefix can be at most 5 characters long",
        "!prefix a b": "a prefix cannot contain spaces",
        "!prefix `x": "a prefix cannot contain backticks",
        f"!prefix <@{world.alice.id}>": "a prefix cannot contain a mention (@ or <)",
        "!prefix /t": "a prefix cannot start with / (that belongs to slash commands)",
    }
    for command, reason in cases.items():
        post = await world.ask(world.mod, command)
        assert post.content == f"That prefix won't work: {reason}.", command
    post = await world.ask(world.mod, "!prefix")
    assert "`!`" in post.content


async def test_mentioning_the_bot_always_works_as_a_prefix(world, tally):
    await tally()
    await world.ask(world.mod, "!prefix ?")
    post = await world.ask(world.alice, f"<@{world.fake.bot_user.id}> prefix")
    assert post.content.startswith("My prefix here is `?`")


async def test_prefix_and_xp_survive_a_restart(world, tally, tmp_path):
    bot = await tally()
    await world.ask(world.mod, "!prefix t!")
    await world.say(world.alice, "remember me")
    await world.ask(world.alice, "t!prefix")  # the message before it has been handled
    assert await bot.stop() == 0
    await tally()
    post = await world.ask(world.alice, "t!level")
    assert field(post, "Total XP") == "5"


async def test_a_member_named_everyone_pings_nobody(world, tally):
    fake = world.fake
    prankster = fake.add_member(world.guild, "@everyone", nick="@here")
    await tally(XP_PER_MESSAGE="100")
    announcement = await world.ask(prankster, "@everyone look at me")
    posts = [announcement]
    posts.append(await world.ask(prankster, "!level"))
    posts.append(await world.ask(world.alice, "!leaderboard"))
    posts.append(await world.ask(world.alice, "!level @everyone"))
    posts.append(await world.ask(world.alice, f"!level <@&{world.mod_role.id}>"))
    assert announcement.pings == {"users": [prankster.id], "roles": [], "everyone": False}
    for post in posts[1:]:
        assert post.pings == {"users": [], "roles": [], "everyone": False}, post


async def test_sql_looking_input_is_stored_as_plain_text(world, tally, storage):
    fake = world.fake
    bobby = fake.add_member(world.guild, "bobby", nick="Robert'); DROP TABLE members;--")
    bot = await tally()
    await world.say(bobby, "hi")
    post = await world.ask(world.mod, "!prefix ';--")
    assert post.content.startswith("Prefix set to `';--`")
    post = await world.ask(world.alice, "';--level x' OR '1'='1")
    assert post.content.startswith("I can't find a member called")
    assert await bot.stop() == 0
    assert await storage.rows("SELECT name, xp FROM members") == [("Robert'); DROP TABLE members;--", 5)]
    assert await storage.rows("SELECT value FROM guild_settings WHERE name = 'prefix'") == [("';--",)]


async def test_help_lists_every_command_with_usage_and_summary(world, tally):
    await tally()
    first = await world.ask(world.alice, "!help")  # in pages of up to 2,000 characters, whole lines each
    pages = [first]
    while not pages[-1].content.endswith("for more about one command."):
        pages.append(await world.fake.wait_for_post(after=world.fake.posts.index(pages[-1]) + 1))
    assert len(pages) >= 2 and all(len(page.content) <= 2000 for page in pages)
    assert pages[0].content.startswith("**Tally commands**\n")
    text = "\n".join(page.content for page in pages)
    assert "`!level [member]`: Show a member's level, XP and rank" in text
    assert "`!leaderboard [page=1]`: Show the server's members by XP, 10 a page; ties go to the lower user ID" in text
    assert "`!prefix [new]`: Show the prefix" in text
    assert "`!help [command]`: List every command, or explain one." in text
    assert "`!coins`: Admins: give, take or set" in text and "`!warn <member> [reason]`" in text
    for command in ("`!settings [name] [value|reset]`", "`!noxp", "`!multipliers", "`!rewards", "`!xp`"):
        assert command in text, command
    post = await world.ask(world.alice, "!help xp")
    assert "`!xp give <target> <amount> [reason]`: Give a member, or every member with a role, some XP" in post.content
    post = await world.ask(world.alice, "!help coins")
    assert "`!coins give <member> <amount> [reason]`: Create coins for a member." in post.content
    post = await world.ask(world.alice, "!help leaderboard")
    assert post.content.startswith("`!leaderboard [page=1]` (also: lb, top)")


async def test_help_for_a_group_of_commands_or_a_missing_subcommand_answers(world, tally):
    await tally()
    post = await world.ask(world.alice, "!help Economy")
    assert post.content.startswith("**Economy**: Coins you cannot cheat.")
    assert "`!transfer <member> <amount>`: Give some of your coins" in post.content
    assert "`!level" not in post.content
    post = await world.ask(world.alice, "!help coins " + "x" * 1990)
    assert post.content == "`coins` has no subcommand called " + "x" * 49 + "…."


async def test_commands_in_dms_say_they_only_work_in_a_server(world, tally):
    await tally()
    count = len(world.fake.posts)
    await world.fake.say_in_dm(world.alice, "!level")
    post = await world.fake.wait_for_post(after=count)
    assert post.content == "This command only works in a server."
    assert post.channel_id == world.fake.dm_channels[world.alice.id].id


async def test_unknown_commands_are_ignored_silently(world, tally):
    bot = await tally()
    await world.say(world.alice, "!nosuchcommand")
    post = await world.ask(world.alice, "!prefix")
    assert post.content.startswith("My prefix")
    assert len(world.fake.posts) == 1
    assert "nosuchcommand" not in bot.log


async def test_leaderboard_cooldown_is_explained(world, tally):
    await tally()
    for _ in range(3):
        await world.ask(world.alice, "!leaderboard")
    post = await world.ask(world.alice, "!leaderboard")
    assert post.content.startswith("Slow down: try that again in ")


async def test_an_unexpected_error_gets_an_apology_and_a_logged_traceback(world, tally, storage):
    bot = await tally()
    await world.ask(world.alice, "!prefix")  # the bot is up and the database open
    meddler = await storage.open()
    async with meddler.transaction() as conn:  # someone edits the database under the bot
        await conn.execute("ALTER TABLE guild_settings RENAME TO aside")
    try:
        post = await world.ask(world.mod, "!prefix ?")
    finally:
        async with meddler.transaction() as conn:
            await conn.execute("ALTER TABLE aside RENAME TO guild_settings")
        await meddler.close()
    assert post.content == "Sorry, something went wrong on my side. The bot's owner can find the details in the log."
    assert "no such table" not in post.content
    assert (
        f"command prefix failed in guild {world.guild.id} channel {world.general.id} for user {world.mod.id}" in bot.log
    )
    assert "Traceback" in bot.log
    post = await world.ask(world.mod, "!prefix ?")  # and the bot carries on
    assert post.content.startswith("Prefix set to `?`")


async def test_invite_gives_a_link_for_levels_only_and_one_with_moderation(world, tally):
    await tally()
    post = await world.ask(world.alice, "!invite")
    base = f"https://discord.com/oauth2/authorize?client_id={world.fake.application_id}&scope=bot&permissions="
    assert post.content == (
        f"Levels, coins and reward roles: <{base}268487680>\nEverything, with `kick` and `ban`: <{base}268487686>"
    )


async def test_a_bot_in_no_server_yet_logs_its_invite_links(world, tally):
    world.fake.guilds.clear()
    bot = await tally()
    line = await bot.wait_for_log("Tally is in no server yet: invite it with")
    assert f"client_id={world.fake.application_id}&scope=bot&permissions=268487680" in line
    assert await bot.stop() == 0


async def test_without_embed_links_cards_and_boards_come_as_plain_text(world, tally, storage):
    await seed_xp(storage, world.guild.id, [(world.alice.id, 250, "alice"), (world.bob.id, 40, "bob")])
    plain_only = world.fake.add_channel(
        world.guild, "no-embeds", [Overwrite(world.fake.bot_user.id, 1, deny=EMBED_LINKS)]
    )
    await tally()
    post = await world.ask(world.alice, "!level", channel=plain_only)
    assert post.embeds == []
    assert post.content.startswith("**alice**\nLevel: 3\nRank: #1 of 2\nTotal XP: 250\n")
    post = await world.ask(world.alice, "!leaderboard", channel=plain_only)
    assert post.embeds == [] and "**#1** alice · level 3 · 250 XP" in post.content
    post = await world.ask(world.alice, "!level")  # where it may, Tally still embeds
    assert post.embeds and post.content == ""
