"""The fake Discord itself: it must follow Discord's documented rules, or the e2e tests lie."""

from __future__ import annotations

import aiohttp

from tests.fake_discord import (
    ADMINISTRATOR,
    EVERYONE_DEFAULT,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    FakeDiscord,
    Overwrite,
    pinged,
)


async def test_rest_answers_with_exactly_application_json_and_lists_unknown_routes():
    fake = FakeDiscord()
    await fake.start()
    try:
        headers = {"Authorization": f"Bot {fake.token}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{fake.url}/api/v10/users/@me", headers=headers) as response:
                assert response.headers["Content-Type"] == "application/json"
                assert (await response.json())["id"] == str(fake.bot_user.id)
            async with http.get(f"{fake.url}/api/v10/users/@me", headers={"Authorization": "Bot wrong"}) as response:
                assert response.status == 401
            async with http.get(f"{fake.url}/api/v10/guilds/1/audit-logs", headers=headers) as response:
                assert response.status == 404
    finally:
        await fake.stop()
    assert fake.unknown_routes == ["GET /guilds/1/audit-logs"]


def test_permissions_follow_discords_overwrite_order():
    fake = FakeDiscord()
    guild = fake.add_guild()
    muted = fake.add_role(guild, "muted")
    helpers = fake.add_role(guild, "helpers")
    user = fake.add_member(guild, "user", roles=[muted, helpers])
    member = guild.members[user.id]
    channel = fake.add_channel(
        guild,
        "news",
        [
            Overwrite(guild.id, 0, deny=SEND_MESSAGES),  # @everyone cannot send
            Overwrite(muted.id, 0, deny=VIEW_CHANNEL),  # role denies ...
            Overwrite(helpers.id, 0, allow=VIEW_CHANNEL | SEND_MESSAGES),  # ... but a role allow wins over role denies
        ],
    )
    assert guild.permissions_in(member, channel) & (VIEW_CHANNEL | SEND_MESSAGES) == VIEW_CHANNEL | SEND_MESSAGES
    channel.overwrites.append(Overwrite(user.id, 1, deny=SEND_MESSAGES))  # a member overwrite wins over roles
    assert not guild.permissions_in(member, channel) & SEND_MESSAGES
    boss = fake.add_role(guild, "admin", ADMINISTRATOR)
    member.roles.append(boss.id)
    assert guild.permissions_in(member, channel) & SEND_MESSAGES  # administrators ignore overwrites
    assert guild.permissions_in(guild.members[guild.owner_id], channel) & SEND_MESSAGES  # so does the owner
    assert guild.everyone.permissions == EVERYONE_DEFAULT


def test_pinged_applies_allowed_mentions_like_discord():
    text = "@everyone <@123456789012345678> <@&223456789012345678>"
    assert pinged(text, None, None) == {
        "users": [123456789012345678],
        "roles": [223456789012345678],
        "everyone": True,
    }
    assert pinged(text, {"parse": []}, None) == {"users": [], "roles": [], "everyone": False}
    assert pinged(text, {"parse": [], "users": ["123456789012345678"]}, None) == {
        "users": [123456789012345678],
        "roles": [],
        "everyone": False,
    }
