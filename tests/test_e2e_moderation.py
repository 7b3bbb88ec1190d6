"""End to end: warn, kick, ban, the mod log and its refusals."""

from __future__ import annotations

from tests.fake_discord import KICK_MEMBERS, MANAGE_MESSAGES
from tests.helpers import field


async def test_warn_records_a_numbered_case_and_dms_the_member(world, tally, storage):
    bot = await tally()
    post = await world.ask(world.mod, "!warn bob stop spamming")
    assert post.content == "Case #1: warned bob."
    dm = world.fake.dm_channels[world.bob.id]
    assert [p.content for p in world.fake.posts if p.channel_id == dm.id] == [
        "You were warned in Tally Test Server: stop spamming"
    ]
    post = await world.ask(world.mod, "!warn bob again")
    assert post.content == "Case #2: warned bob."
    assert await bot.stop() == 0
    assert await storage.rows("SELECT number, action, target_id, moderator_id, reason FROM cases ORDER BY number") == [
        (1, "warn", world.bob.id, world.mod.id, "stop spamming"),
        (2, "warn", world.bob.id, world.mod.id, "again"),
    ]


async def test_warn_says_so_when_the_members_dms_are_closed(world, tally):
    world.bob.dms_closed = True
    await tally()
    post = await world.ask(world.mod, "!warn bob")
    assert post.content == "Case #1: warned bob. (I couldn't DM them: their DMs are closed.)"


async def test_moderation_commands_need_their_permissions(world, tally):
    await tally()
    for command, permission in [
        ("!warn bob", "Manage Messages"),
        ("!kick bob", "Kick Members"),
        ("!ban bob", "Ban Members"),
        ("!modlog bob", "Manage Messages"),
        ("!case 1", "Manage Messages"),
        ("!reason 1 x", "Manage Messages"),
        ("!modlogchannel off", "Manage Server"),
    ]:
        post = await world.ask(world.alice, command)
        assert post.content == f"You need the {permission} permission to do that.", command


async def test_kick_and_ban_act_with_the_reason_in_the_audit_log(world, tally):
    await tally()
    post = await world.ask(world.mod, "!kick bob flooding the channel")
    assert post.content == "Case #1: kicked bob."
    post = await world.ask(world.mod, "!ban carol raid")
    assert post.content == "Case #2: banned carol."
    log = world.fake.audit_log
    assert [(e["action"], e["target_id"]) for e in log] == [("kick", world.bob.id), ("ban", world.carol.id)]
    assert log[0]["reason"].endswith("flooding the channel") and str(world.mod.id) in log[0]["reason"]
    assert world.carol.id in world.guild.bans
    assert world.bob.id not in world.guild.members
    post = await world.ask(world.mod, f"!modlog {world.bob.id}")  # works for a member who is gone
    assert post.embeds[0]["description"].startswith("**#1** kick · by mod · <t:")


async def test_nobody_acts_on_themselves_the_owner_the_bot_or_someone_not_below_them(world, tally):
    fake = world.fake
    senior_role = fake.add_role(world.guild, "Senior", MANAGE_MESSAGES, position=3)
    senior = fake.add_member(world.guild, "senior", roles=[senior_role])
    await tally()
    cases = {
        "!warn mod": "You can't warn yourself.",
        f"!kick {world.owner.id}": "The server owner can't be kicked.",
        f"!ban <@{fake.bot_user.id}>": "I won't ban myself.",
        "!warn senior": "senior's top role is not below yours, so you can't warn them.",
    }
    for command, reply in cases.items():
        post = await world.ask(world.mod, command)
        assert post.content == reply, command
    assert fake.audit_log == []
    assert senior.id in world.guild.members


async def test_the_bot_explains_when_it_lacks_the_permission_or_the_role_height(world, tally):
    fake = world.fake
    high_role = fake.add_role(world.guild, "VIP", 0, position=9)  # above the bot's own role
    vip = fake.add_member(world.guild, "vip", roles=[high_role])
    tally_role = next(r for r in world.guild.roles.values() if r.name == "Tally")
    await tally()
    post = await world.ask(world.owner, "!kick vip")
    assert post.content == "My top role is not above vip's, so I can't kick them. Move my role higher."
    tally_role.permissions &= ~KICK_MEMBERS
    await fake.dispatch(
        "GUILD_ROLE_UPDATE", {"guild_id": str(world.guild.id), "role": tally_role.payload()}, 1
    )  # the owner takes Kick Members away from the bot
    post = await world.ask(world.owner, "!kick bob")
    assert post.content == "I need the Kick Members permission to do that."
    assert fake.audit_log == [] and vip.id in world.guild.members


async def test_modlog_pages_newest_first_with_case_numbers(world, tally):
    await tally()
    for i in range(1, 13):
        post = await world.ask(world.mod, f"!warn bob reason {i}")
        assert post.content.startswith(f"Case #{i}:")
    post = await world.ask(world.mod, "!modlog bob")
    lines = post.embeds[0]["description"].split("\n")
    assert lines[0].startswith("**#12** warn · by mod") and lines[1] == "reason 12"
    assert lines[-2].startswith("**#3** warn") and post.embeds[0]["footer"]["text"] == "Page 1 of 2 · 12 cases"
    post = await world.ask(world.mod, "!modlog bob 2")
    assert post.embeds[0]["description"].split("\n")[::2][0].startswith("**#2** warn")
    post = await world.ask(world.mod, "!modlog bob 3")
    assert post.content == "There are only 2 pages of cases."
    post = await world.ask(world.mod, "!modlog alice")
    assert post.content == "alice has a clean record here."


async def test_reason_corrects_a_case_and_keeps_the_earlier_text(world, tally):
    await tally()
    await world.ask(world.mod, "!warn bob spam")
    post = await world.ask(world.mod, "!reason 1 spam in #general, third time")
    assert post.content == "Case #1's reason is now: spam in #general, third time"
    post = await world.ask(world.mod, "!case 1")
    assert field(post, "Reason") == "spam in #general, third time"
    assert field(post, "Earlier reasons").endswith(" spam")
    assert field(post, "Moderator") == "mod"
    post = await world.ask(world.mod, "!case 7")
    assert post.content == "There is no case #7 in this server."


async def test_a_moderator_who_left_is_shown_as_unknown(world, tally):
    await tally()
    await world.ask(world.mod, "!warn bob")
    await world.fake.remove_member(world.guild, world.mod)
    post = await world.ask(world.owner, "!case 1")
    assert field(post, "Moderator") == "unknown (left the server)"


async def test_new_cases_are_posted_in_the_mod_log_channel_until_turned_off(world, tally):
    modlog = world.fake.add_channel(world.guild, "mod-log")
    await tally()
    post = await world.ask(world.mod, f"!modlogchannel <#{modlog.id}>")
    assert post.content == f"New cases will be posted in <#{modlog.id}>."
    await world.ask(world.mod, "!warn bob @everyone look")
    logged = await world.fake.wait_for_post(channel_id=modlog.id)
    assert logged.embeds[0]["title"] == "Case #1 · warn"
    assert logged.pings == {"users": [], "roles": [], "everyone": False}
    post = await world.ask(world.mod, "!modlogchannel off")
    assert post.content == "New cases will no longer be posted in a channel."
    await world.ask(world.mod, "!warn bob again")
    assert [p for p in world.fake.posts if p.channel_id == modlog.id] == [logged]


async def test_when_discord_refuses_an_action_the_moderator_is_told(world, tally):
    fake = world.fake
    await tally()
    # Discord's view differs from the bot's cache: the target gained a high role the bot never heard of.
    high = fake.add_role(world.guild, "Secret", 0, position=9)
    world.guild.members[world.bob.id].roles.append(high.id)
    post = await world.ask(world.mod, "!kick bob")
    assert post.content == "Discord refused that: I'm missing a permission here, or my role is too low."
    assert fake.audit_log == [] and world.bob.id in world.guild.members
    post = await world.ask(world.mod, "!modlog bob")
    assert post.content == "bob has a clean record here."  # no case for an action that did not happen
