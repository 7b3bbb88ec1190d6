"""End to end: role rewards that follow the level, as the fake Discord enforces roles, on each backend."""

from __future__ import annotations

from tests.fake_discord import MANAGE_ROLES
from tests.helpers import field, seed_xp


def role_requests(world) -> list[tuple[str, str]]:
    """The bot's requests that change a member's roles: (method, path)."""
    return [
        (method, path)
        for method, path, _ in world.fake.requests
        if "/members/" in path and (method == "PATCH" or "/roles/" in path)
    ]


def roles_of(world, user) -> set[int]:
    return set(world.guild.members[user.id].roles)


def let_tally_manage_roles(world) -> None:
    bot_member = world.guild.members[world.fake.bot_user.id]
    for role_id in bot_member.roles:
        world.guild.roles[role_id].permissions |= MANAGE_ROLES


async def test_adding_a_reward_checks_permission_hierarchy_managed_and_everyone_first(world, tally, storage):
    fake = world.fake
    regulars = fake.add_role(world.guild, "Regulars", position=1)
    admins = fake.add_role(world.guild, "Admins", position=9)  # above Tally's role (5)
    integration = fake.add_role(world.guild, "Twitch Subscriber", position=1, managed=True)
    await tally()
    post = await world.ask(world.mod, "!rewards add 5 Regulars")
    assert post.content == f"I can't use <@&{regulars.id}> as a reward: I need the Manage Roles permission."
    let_tally_manage_roles(world)
    await fake.update_role_permissions(world.guild)
    for role, says in (
        (admins, "it is not below my highest role: move my role above it in Server Settings > Roles"),
        (integration, "it is managed by an integration"),
    ):
        post = await world.ask(world.mod, f"!rewards add 5 <@&{role.id}>")
        assert post.content.startswith(f"I can't use <@&{role.id}> as a reward: {says}"), post.content
    post = await world.ask(world.mod, "!rewards add 5 @everyone")
    assert "@everyone is every member's role already" in post.content
    assert await storage.rows("SELECT * FROM guild_settings") == []
    post = await world.ask(world.alice, "!rewards add 5 Regulars")
    assert "Manage Server" in post.content
    post = await world.ask(world.mod, "!rewards add 5 Regulars")
    assert post.content.startswith(f"Members who reach level 5 get <@&{regulars.id}>. `!rewards sync` gives it")
    listing = await world.ask(world.alice, "!rewards")
    assert f"level 5: <@&{regulars.id}>" in listing.content


async def test_level_ups_give_rewards_in_one_request_each_and_stack_keeps_them(world, tally):
    fake = world.fake
    let_tally_manage_roles(world)
    chatty = fake.add_role(world.guild, "Chatty", position=1)
    regulars = fake.add_role(world.guild, "Regulars", position=2)
    veterans = fake.add_role(world.guild, "Veterans", position=3)
    await tally(XP_PER_MESSAGE="100")
    await world.ask(world.mod, "!rewards add 2 Chatty")
    await world.ask(world.mod, "!rewards add 3 Regulars")
    await world.ask(world.mod, "!rewards add 3 Veterans")
    await world.ask(world.mod, "!settings levelup-role-message {mention} is now {role}!")
    announcement = await world.ask(world.alice, "chat")  # level 2
    assert announcement.content == f"<@{world.alice.id}> is now Chatty!"
    assert roles_of(world, world.alice) == {chatty.id}
    before = len(role_requests(world))
    announcement = await world.ask(world.alice, "chat")  # level 3: two roles, one request
    assert announcement.content == f"<@{world.alice.id}> is now Regulars, Veterans!"
    assert roles_of(world, world.alice) == {chatty.id, regulars.id, veterans.id}
    assert len(role_requests(world)) == before + 1
    announcement = await world.ask(world.alice, "chat")  # level 4: no reward, the plain message
    assert announcement.content == f"<@{world.alice.id}> reached level 4!"
    assert announcement.pings == {"users": [world.alice.id], "roles": [], "everyone": False}


async def test_replace_mode_keeps_only_the_highest_levels_roles(world, tally):
    fake = world.fake
    let_tally_manage_roles(world)
    chatty = fake.add_role(world.guild, "Chatty", position=1)
    regulars = fake.add_role(world.guild, "Regulars", position=2)
    keep = fake.add_role(world.guild, "Artists", position=1)  # not a reward: never touched
    world.guild.members[world.alice.id].roles.append(keep.id)
    await tally(XP_PER_MESSAGE="100")
    await world.ask(world.mod, "!rewards add 2 Chatty")
    await world.ask(world.mod, "!rewards add 3 Regulars")
    assert (await world.ask(world.mod, "!rewards mode replace")).content == "Reward roles: replace."
    await world.ask(world.alice, "chat")  # level 2
    assert roles_of(world, world.alice) == {keep.id, chatty.id}
    before = len(role_requests(world))
    await world.ask(world.alice, "chat")  # level 3: Chatty out, Regulars in, one request
    assert roles_of(world, world.alice) == {keep.id, regulars.id}
    assert len(role_requests(world)) == before + 1


async def test_a_member_who_rejoins_gets_the_rewards_back_unless_the_server_turned_it_off(world, tally):
    fake = world.fake
    let_tally_manage_roles(world)
    regulars = fake.add_role(world.guild, "Regulars", position=1)
    await tally(XP_PER_MESSAGE="100")
    await world.ask(world.mod, "!rewards add 2 Regulars")
    await world.ask(world.alice, "chat")  # level 2
    assert roles_of(world, world.alice) == {regulars.id}

    await fake.member_leave(world.guild, world.alice)
    await fake.member_join(world.guild, world.alice)
    await world.fake.wait_for_request("PUT", f"/guilds/{world.guild.id}/members/{world.alice.id}/roles/{regulars.id}")
    assert roles_of(world, world.alice) == {regulars.id}

    await world.ask(world.mod, "!settings rewards-on-rejoin off")
    await fake.member_leave(world.guild, world.alice)
    before = len(role_requests(world))
    await fake.member_join(world.guild, world.alice)
    await world.ask(world.alice, "!level")  # the join has been handled
    assert roles_of(world, world.alice) == set()
    assert len(role_requests(world)) == before


async def test_a_reward_role_deleted_or_moved_above_tally_is_reported_once_not_failed_on(world, tally):
    fake = world.fake
    let_tally_manage_roles(world)
    regulars = fake.add_role(world.guild, "Regulars", position=1)
    veterans = fake.add_role(world.guild, "Veterans", position=2)
    await tally(XP_PER_MESSAGE="100")
    await world.ask(world.mod, "!rewards add 2 Regulars")
    await world.ask(world.mod, "!rewards add 3 Veterans")
    await fake.delete_role(world.guild, regulars)
    await fake.move_role(world.guild, veterans, position=9)  # above Tally's role
    before = len(role_requests(world))
    report = await world.ask(world.alice, "chat")  # level 2: the deleted role
    assert report.content.startswith(
        f"I can't give or take the reward role <@&{regulars.id}> (the role no longer exists)"
    )
    announcement = await world.fake.wait_for_post(after=world.fake.posts.index(report) + 1)
    assert announcement.content == f"<@{world.alice.id}> reached level 2!"
    report = await world.ask(world.bob, "chat")  # bob, level 2: already said
    assert report.content == f"<@{world.bob.id}> reached level 2!"
    report = await world.ask(world.alice, "chat")  # level 3: Veterans is above Tally
    assert f"<@&{veterans.id}> (it is not below my highest role" in report.content
    announcement = await world.fake.wait_for_post(after=world.fake.posts.index(report) + 1)
    assert announcement.content == f"<@{world.alice.id}> reached level 3!"
    assert len(role_requests(world)) == before  # nothing Discord would refuse was sent
    assert field(await world.ask(world.alice, "!level"), "Level") == "3"


async def test_rewards_sync_brings_ten_thousand_members_in_line_within_the_rate_limits(world, tally, storage):
    fake = world.fake
    let_tally_manage_roles(world)
    regulars = fake.add_role(world.guild, "Regulars", position=1)
    crowd = [fake.add_member(world.guild, f"member{i}") for i in range(10_000)]
    earned, unearned = crowd[:300], crowd[300:320]
    for user in unearned:  # hold the reward without the level (given by hand, or XP reset)
        world.guild.members[user.id].roles.append(regulars.id)
    await seed_xp(storage, world.guild.id, [(user.id, 150, user.username) for user in earned])  # level 2
    db = await storage.open()
    await db.set_setting(world.guild.id, "rewards", f"2:{regulars.id}")
    await db.close()
    fake.limit("member_roles", 25, per_seconds=0.25)
    await tally()
    progress = await world.ask(world.mod, "!rewards sync")
    assert progress.content.startswith("Syncing reward roles: 0 done, ")
    busy = await world.ask(world.mod, "!rewards sync")
    assert busy.content.startswith("A reward role sync is already running in this server")
    final = await fake.wait_for_edit(
        progress.id, lambda post: post.content.startswith("Reward roles synced"), timeout=120
    )
    assert final.content == "Reward roles synced: 10,005 members checked, 320 changed."
    assert all(regulars.id in roles_of(world, user) for user in earned)
    assert not any(regulars.id in roles_of(world, user) for user in unearned + crowd[320:400])
    assert not any(request.early for request in fake.bucket_requests)  # every 429 honoured
    assert await storage.rows("SELECT * FROM reward_syncs") == []


async def test_a_sync_stopped_by_a_restart_resumes_where_it_stopped(world, tally, storage):
    fake = world.fake
    let_tally_manage_roles(world)
    regulars = fake.add_role(world.guild, "Regulars", position=1)
    crowd = [fake.add_member(world.guild, f"member{i}") for i in range(400)]
    await seed_xp(storage, world.guild.id, [(user.id, 150, user.username) for user in crowd])
    db = await storage.open()
    await db.set_setting(world.guild.id, "rewards", f"2:{regulars.id}")
    await db.close()
    fake.limit("member_roles", 10, per_seconds=0.25)  # 40 a second: about 10 s for everyone
    bot = await tally()
    progress = await world.ask(world.mod, "!rewards sync")
    await fake.wait_for_edit(progress.id, lambda post: not post.content.startswith("Syncing reward roles: 0 done"))
    assert await bot.stop() == 0
    (saved,) = await storage.rows("SELECT done FROM reward_syncs")
    assert 0 < saved[0] < 405
    await tally()  # goes on by itself, editing the same message
    final = await fake.wait_for_edit(
        progress.id, lambda post: post.content.startswith("Reward roles synced"), timeout=60
    )
    assert final.content.startswith("Reward roles synced: 405 members checked, 400 changed")
    assert all(regulars.id in roles_of(world, user) for user in crowd)
    assert await storage.rows("SELECT * FROM reward_syncs") == []
