"""End to end: !settings, as a server's admins set it and its members feel it, on each backend."""

from __future__ import annotations

from tests.helpers import field, seed_xp


async def test_settings_lists_every_setting_with_its_value_and_whether_it_is_the_default(world, tally):
    await tally(XP_PER_MESSAGE="7")
    post = await world.ask(world.alice, "!settings")
    lines = post.content.split("\n")
    assert lines[0] == "**Settings for Tally Test Server**"
    assert "`prefix` · `!` (default)" in lines
    assert "`xp` · 7 (default)" in lines
    assert "`cooldown` · 0 s (default)" in lines
    assert "`curve` · linear (default)" in lines
    assert "`levelup` · here (default)" in lines
    assert "`modlog` · off (default)" in lines
    assert any(line.startswith("`levelup-message` · {mention} reached level {level}!") for line in lines)
    alias = await world.ask(world.alice, "!config")
    assert alias.content == post.content


async def test_changing_a_setting_needs_manage_server(world, tally, storage):
    await tally()
    post = await world.ask(world.alice, "!settings xp 50")
    assert "Manage Server" in post.content
    assert await storage.rows("SELECT * FROM guild_settings") == []


async def test_xp_as_a_range_draws_each_message_from_it_and_survives_a_restart(world, tally, storage):
    bot = await tally()
    post = await world.ask(world.mod, "!settings xp 15-25")
    assert post.content == "`xp` is now 15-25."
    for _ in range(20):
        await world.say(world.alice, "chat")  # level-ups are announced on the way
    await world.ask(world.carol, "!prefix")  # every message before it has been handled
    assert await bot.stop() == 0
    total = (await storage.xp(world.guild.id))[world.alice.id]
    assert 20 * 15 <= total <= 20 * 25 and total not in (20 * 15, 20 * 25)  # drawn, not fixed
    assert await storage.rows("SELECT name, value FROM guild_settings") == [("xp", "15-25")]
    await tally()
    shown = await world.ask(world.alice, "!settings xp")
    assert shown.content.startswith("`xp` · 15-25\n")  # no "(default)": the server set it
    await world.say(world.bob, "chat")
    assert 15 <= int(field(await world.ask(world.bob, "!level"), "Total XP")) <= 25
    post = await world.ask(world.mod, "!settings xp reset")
    assert post.content == "`xp` is back to the default: 5."
    await world.say(world.carol, "chat")
    assert field(await world.ask(world.carol, "!level"), "Total XP") == "5"


async def test_bad_values_are_refused_with_one_line_and_change_nothing(world, tally, storage):
    await tally()
    refusals = {
        "!settings xp 0": "That won't work for `xp`: XP per message must be a whole number from 1 to 1,000.",
        "!settings xp 25-15": "That won't work for `xp`: a range of XP goes from the lower number to the higher",
        "!settings cooldown -1": "That won't work for `cooldown`: the cooldown must be a whole number from 0 to 86,400.",
        "!settings curve steep": "That won't work for `curve`: the level curve is one of linear, mee6.",
        "!settings prefix @x": "That won't work for `prefix`: a prefix cannot contain a mention (@ or <).",
        "!settings levelup #nowhere": "I can't find a text channel called \\#nowhere in this server.",
        "!settings colour red": "There is no setting called `colour`. Settings: prefix, xp, cooldown, curve, levelup,",
    }
    for command, reply in refusals.items():
        post = await world.ask(world.mod, command)
        assert post.content.startswith(reply), (command, post.content)
    assert await storage.rows("SELECT * FROM guild_settings") == []


async def test_cooldown_and_curve_take_effect_at_once(world, tally):
    await tally(XP_PER_MESSAGE="50", XP_COOLDOWN_SECONDS="0")
    await world.ask(world.mod, "!settings cooldown 3600")
    for _ in range(3):
        await world.say(world.alice, "chat")
    post = await world.ask(world.alice, "!level")
    assert field(post, "Total XP") == "50"  # one message in the hour earned XP
    await world.ask(world.mod, "!settings curve mee6")
    post = await world.ask(world.alice, "!level")
    assert field(post, "Level") == "0"  # MEE6's curve: level 1 at 100 XP
    board = await world.ask(world.alice, "!leaderboard")
    assert "level 0 · 50 XP" in board.embeds[0]["description"]


async def test_levelup_in_a_fixed_channel_by_dm_or_off(world, tally):
    announcements = world.fake.add_channel(world.guild, "level-ups")
    await tally(XP_PER_MESSAGE="100")
    post = await world.ask(world.mod, f"!settings levelup <#{announcements.id}>")
    assert post.content == f"`levelup` is now <#{announcements.id}>."
    count = len(world.fake.posts)
    await world.say(world.alice, "chat")  # level 2
    announcement = await world.fake.wait_for_post(after=count, channel_id=announcements.id)
    assert announcement.content == f"<@{world.alice.id}> reached level 2!"

    await world.ask(world.mod, "!settings levelup dm")
    count = len(world.fake.posts)
    await world.say(world.alice, "chat")  # level 3, by DM
    dm = world.fake.dm_channels.get(world.alice.id)
    announcement = await world.fake.wait_for_post(after=count, channel_id=dm.id if dm else None)
    assert announcement.content == f"<@{world.alice.id}> reached level 3!"
    assert announcement.channel_id == world.fake.dm_channels[world.alice.id].id

    world.alice.dms_closed = True  # closed DMs: no announcement, no error, the bot carries on
    await world.say(world.alice, "chat")  # level 4
    post = await world.ask(world.alice, "!level")
    assert field(post, "Level") == "4"

    await world.ask(world.mod, "!settings levelup off")
    count = len(world.fake.posts)
    await world.say(world.bob, "chat")  # level 2, announced nowhere
    post = await world.ask(world.bob, "!level")
    assert field(post, "Level") == "2"
    assert [p.content for p in world.fake.posts[count:]] == [post.content]


async def test_a_levelup_template_fills_every_placeholder_and_pings_only_the_member(world, tally, storage):
    await seed_xp(storage, world.guild.id, [(world.bob.id, 1000, "bob")])
    await tally(XP_PER_MESSAGE="100")
    template = (
        "@everyone @here <@&{role_id}> GG {mention} ({name}), level {old_level} -> {level}, {xp} XP, "
        "rank {rank} in {server}"
    ).replace("{role_id}", str(world.mod_role.id))
    post = await world.ask(world.mod, f"!settings levelup-message {template}")
    assert post.content.startswith("`levelup-message` is now ")
    announcement = await world.ask(world.alice, "chat")
    assert announcement.content == (
        f"@everyone @here <@&{world.mod_role.id}> GG <@{world.alice.id}> (alice), level 1 -> 2, 100 XP, "
        "rank #2 in Tally Test Server"
    )
    assert announcement.pings == {"users": [world.alice.id], "roles": [], "everyone": False}

    test = await world.ask(world.mod, "!settings levelup test")
    assert test.content == "A level-up would be announced where it happens as:"
    preview = await world.fake.wait_for_post(after=world.fake.posts.index(test) + 1)
    assert preview.content.startswith("@everyone @here")
    assert preview.pings == {"users": [], "roles": [], "everyone": False}


async def test_bad_templates_are_refused_with_the_list_of_placeholders(world, tally, storage):
    await tally()
    placeholders = "placeholders: {mention}, {name}, {level}, {old_level}, {xp}, {rank}, {server}"
    for template, says in {
        "GG {user}": "`{user}` is not a placeholder; " + placeholders,
        "GG {name.__class__}": "`{name.__class__}` is not a placeholder; " + placeholders,
        "GG {level:>99999}": "`{level}` is not a placeholder; " + placeholders,
        "GG {": "a { or } is not closed",
        "x" * 501: "a template can be at most 500 characters long; " + placeholders,
        "{mention} is {role}": "`{role}` only works in levelup-role-message",
    }.items():
        post = await world.ask(world.mod, f"!settings levelup-message {template}")
        assert says in post.content, (template, post.content)
    post = await world.ask(world.mod, "!settings levelup-role-message {mention} is now {role}")
    assert post.content == "`levelup-role-message` is now {mention} is now {role}."
    assert await storage.rows("SELECT name FROM guild_settings") == [("levelup-role-message",)]


async def test_prefix_and_modlog_are_settings_of_the_same_model(world, tally, storage):
    modlog = world.fake.add_channel(world.guild, "mod-log")
    await tally()
    await world.ask(world.mod, "!settings prefix ?")
    post = await world.ask(world.alice, "?prefix")
    assert post.content.startswith("My prefix here is `?`")
    await world.ask(world.mod, f"?modlogchannel <#{modlog.id}>")
    post = await world.ask(world.alice, "?settings modlog")
    assert post.content.startswith(f"`modlog` · <#{modlog.id}>\n")
    await world.ask(world.mod, "?settings prefix reset")
    post = await world.ask(world.alice, "!settings prefix")
    assert post.content.startswith("`prefix` · `!` (default)")
    assert await storage.rows("SELECT name, value FROM guild_settings") == [("modlog", str(modlog.id))]


async def test_a_stored_value_tally_cannot_read_is_logged_and_the_default_used(world, tally, storage):
    db = await storage.open()
    await db.set_setting(world.guild.id, "xp", "lots")
    await db.set_setting(world.guild.id, "sparkles", "on")
    await db.set_setting(world.guild.id, "prefix", "?")
    await db.close()
    bot = await tally(XP_PER_MESSAGE="3")
    post = await world.ask(world.alice, "?settings xp")
    assert post.content.startswith("`xp` · 3 (default)")
    assert f"guild {world.guild.id}: the stored xp cannot be read" in bot.log
    assert "has a setting this Tally does not know ('sparkles')" in bot.log


async def test_noxp_channels_and_roles_earn_nothing_and_a_thread_follows_its_channel(world, tally, storage):
    fake = world.fake
    bots = fake.add_channel(world.guild, "bot-commands")
    thread = fake.add_thread(world.guild, bots, "a thread")
    muted = fake.add_role(world.guild, "Muted")
    world.guild.members[world.carol.id].roles.append(muted.id)
    bot = await tally(XP_PER_MESSAGE="10")
    assert (
        await world.ask(world.mod, f"!noxp add <#{bots.id}>")
    ).content == f"Messages in <#{bots.id}> no longer earn XP."
    post = await world.ask(world.mod, "!settings noxp add Muted")
    assert post.content == f"Members with <@&{muted.id}> no longer earn XP."
    for channel in (bots, thread, world.general):
        await world.say(world.alice, "chat", channel)
    await world.say(world.carol, "chat")
    listing = await world.ask(world.alice, "!noxp")
    assert listing.content == f"No XP in: <#{bots.id}>, <@&{muted.id}>."
    assert field(await world.ask(world.alice, "!level"), "Total XP") == "10"  # only #general counted
    assert "hasn't earned any XP" in (await world.ask(world.alice, "!level carol")).content
    assert await bot.stop() == 0
    await tally(XP_PER_MESSAGE="10")  # kept across a restart
    await world.ask(world.mod, f"!noxp remove <#{bots.id}>")
    await world.say(world.alice, "chat", thread)
    assert field(await world.ask(world.alice, "!level"), "Total XP") == "20"
    assert (await world.ask(world.alice, "!noxp add Muted")).content.startswith("You need the Manage Server")


async def test_multipliers_multiply_channel_by_the_highest_role_and_round(world, tally):
    fake = world.fake
    events = fake.add_channel(world.guild, "events")
    boosters = fake.add_role(world.guild, "Boosters")
    veterans = fake.add_role(world.guild, "Veterans")
    world.guild.members[world.alice.id].roles += [boosters.id, veterans.id]
    await tally(XP_PER_MESSAGE="5")
    assert (await world.ask(world.mod, f"!multipliers <#{events.id}> 2")).content == (
        f"XP multiplier for <#{events.id}>: ×2."
    )
    await world.ask(world.mod, "!multipliers Boosters 1.5")
    await world.ask(world.mod, "!settings multipliers Veterans 1.3")
    await world.say(world.alice, "chat", events)  # 5 x 2 x 1.5 (the highest role) = 15
    await world.say(world.alice, "chat")  # 5 x 1.5 = 7.5, rounded to 8
    await world.say(world.bob, "chat", events)  # no role: 5 x 2 = 10
    assert field(await world.ask(world.alice, "!level"), "Total XP") == "23"
    assert field(await world.ask(world.bob, "!level"), "Total XP") == "10"
    listing = await world.ask(world.alice, "!multipliers")
    assert listing.content.startswith(f"XP multipliers: <#{events.id}> ×2, ")
    assert "the highest applies" in listing.content
    for bad in ("10.5", "-1", "1.25", "lots", "nan"):
        post = await world.ask(world.mod, f"!multipliers Boosters {bad}")
        assert post.content == (
            "That won't work: a multiplier is a number from 0 to 10 in steps of 0.1, such as 1.5 (0 earns nothing)."
        ), bad
    await world.ask(world.mod, f"!multipliers <#{events.id}> 0")  # 0: nothing, and no cooldown started
    await world.say(world.bob, "chat", events)
    assert field(await world.ask(world.bob, "!level"), "Total XP") == "10"
    await world.ask(world.mod, "!multipliers Boosters reset")
    post = await world.ask(world.alice, "!settings multipliers")
    assert post.content.startswith(f"`multipliers` · <#{events.id}> ×0, <@&{veterans.id}> ×1.3\n")


async def test_departed_off_leaves_members_who_left_off_the_leaderboard_and_out_of_ranks(world, tally, storage):
    gone = world.fake.add_user("gone")  # earned XP, then left
    await seed_xp(
        storage, world.guild.id, [(gone.id, 900, "gone"), (world.alice.id, 500, "alice"), (world.bob.id, 100, "bob")]
    )
    await tally()
    board = await world.ask(world.alice, "!leaderboard")
    assert board.embeds[0]["description"].split("\n")[0] == "**#1** gone · level 10 · 900 XP"
    assert field(await world.ask(world.alice, "!level"), "Rank") == "#2 of 3"
    assert (await world.ask(world.mod, "!settings departed off")).content == "`departed` is now off."
    board = await world.ask(world.alice, "!leaderboard")
    assert board.embeds[0]["description"].split("\n") == [
        "**#1** alice · level 6 · 500 XP",
        "**#2** bob · level 2 · 100 XP",
    ]
    assert "2 members" in board.embeds[0]["footer"]["text"]
    assert field(await world.ask(world.alice, "!level"), "Rank") == "#1 of 2"
    await world.fake.member_leave(world.guild, world.bob)  # Discord's leave event keeps the list current
    board = await world.ask(world.alice, "!leaderboard")
    assert board.embeds[0]["description"].split("\n") == ["**#1** alice · level 6 · 500 XP"]
