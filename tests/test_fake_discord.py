"""The fake Discord itself: it must follow Discord's documented rules, or the e2e tests lie."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
import pytest
import yarl

from tests.fake_discord import (
    ADMINISTRATOR,
    ATTACH_FILES,
    EMBED_LINKS,
    EVERYONE_DEFAULT,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILD_PRESENCES,
    INTENT_GUILDS,
    MANAGE_NICKNAMES,
    MANAGE_ROLES,
    OP_IDENTIFY,
    OP_INVALID_SESSION,
    OP_REQUEST_MEMBERS,
    OP_RESUME,
    SEND_MESSAGES,
    UPLOAD_LIMIT,
    VIEW_CHANNEL,
    FakeDiscord,
    Overwrite,
    RateLimitHit,
    Role,
    bucket_hash,
    pinged,
    shard_of,
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


# -- message limits -------------------------------------------------------------------


def too_long(limit: int) -> dict[str, Any]:
    return {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}]}


def required() -> dict[str, Any]:
    return {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}


async def post_message(fake: FakeDiscord, channel_id: int, body: dict[str, Any]) -> tuple[int, Any]:
    """POST a message as the bot would, with raw HTTP; the status and the JSON answer."""
    headers = {"Authorization": f"Bot {fake.token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake.url}/api/v10/channels/{channel_id}/messages", json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def fields(count: int, name: str = "n", value: str = "v") -> list[dict[str, str]]:
    return [{"name": name, "value": value} for _ in range(count)]


# (a message of size n, the limit, where Discord reports one over it)
LIMITS = [
    pytest.param(lambda n: {"content": "c" * n}, 2000, {"content": too_long(2000)}, id="content"),
    pytest.param(
        lambda n: {"embeds": [{"description": "d"}] * n}, 10, {"embeds": too_long(10)}, id="embeds per message"
    ),
    pytest.param(
        lambda n: {"embeds": [{"title": "t" * n}]}, 256, {"embeds": {"0": {"title": too_long(256)}}}, id="title"
    ),
    pytest.param(
        lambda n: {"embeds": [{"description": "d" * n}]},
        4096,
        {"embeds": {"0": {"description": too_long(4096)}}},
        id="description",
    ),
    pytest.param(
        lambda n: {"embeds": [{"fields": fields(n)}]},
        25,
        {"embeds": {"0": {"fields": too_long(25)}}},
        id="fields per embed",
    ),
    pytest.param(
        lambda n: {"embeds": [{"fields": fields(2) + fields(1, name="n" * n)}]},
        256,
        {"embeds": {"0": {"fields": {"2": {"name": too_long(256)}}}}},
        id="field name",
    ),
    pytest.param(
        lambda n: {"embeds": [{"fields": fields(3) + fields(1, value="v" * n)}]},
        1024,
        {"embeds": {"0": {"fields": {"3": {"value": too_long(1024)}}}}},
        id="field value",
    ),
    pytest.param(
        lambda n: {"embeds": [{"footer": {"text": "f" * n}}]},
        2048,
        {"embeds": {"0": {"footer": {"text": too_long(2048)}}}},
        id="footer text",
    ),
    pytest.param(
        lambda n: {"embeds": [{"author": {"name": "a" * n}}]},
        256,
        {"embeds": {"0": {"author": {"name": too_long(256)}}}},
        id="author name",
    ),
    pytest.param(
        lambda n: {"embeds": [{"description": "d" * 4000}, {"description": "d" * (n - 4000)}]},
        6000,
        {
            "embeds": {
                "_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED", "message": "Embed size exceeds maximum size of 6000"}]
            }
        },
        id="6000 across two embeds",
    ),
]


@pytest.mark.parametrize(("message", "limit", "errors"), LIMITS)
async def test_a_message_exactly_at_a_discord_limit_is_posted(world, message, limit, errors):
    status, answer = await post_message(world.fake, world.general.id, message(limit))
    assert status == 200, answer
    assert [post.id for post in world.fake.posts] == [int(answer["id"])]


@pytest.mark.parametrize(("message", "limit", "errors"), LIMITS)
async def test_one_over_a_discord_limit_is_refused_as_invalid_form_body_and_not_posted(world, message, limit, errors):
    status, answer = await post_message(world.fake, world.general.id, message(limit + 1))
    assert status == 400
    assert answer == {"code": 50035, "message": "Invalid Form Body", "errors": errors}
    assert world.fake.posts == []
    assert world.fake.requests[-1][:2] == ("POST", f"/channels/{world.general.id}/messages")


async def test_the_6000_total_counts_every_embed_text_across_the_message(world):
    embed = {
        "title": "t" * 200,
        "description": "d" * 1000,
        "fields": fields(1, name="n" * 100, value="v" * 600),
        "footer": {"text": "f" * 50},
        "author": {"name": "a" * 50},
    }  # 2,000 characters each
    status, _ = await post_message(world.fake, world.general.id, {"embeds": [embed] * 3})
    assert status == 200
    status, answer = await post_message(world.fake, world.general.id, {"embeds": [embed] * 3 + [{"title": "!"}]})
    assert status == 400
    assert answer["errors"]["embeds"]["_errors"][0]["code"] == "MAX_EMBED_SIZE_EXCEEDED"
    assert len(world.fake.posts) == 1


async def test_an_embed_field_with_an_empty_value_is_refused(world):
    embed = {"fields": [{"name": "Level", "value": "3"}, {"name": "XP", "value": ""}]}
    status, answer = await post_message(world.fake, world.general.id, {"embeds": [embed]})
    assert status == 400
    assert answer["errors"] == {"embeds": {"0": {"fields": {"1": {"value": required()}}}}}
    assert world.fake.posts == []


async def test_an_embed_field_without_a_name_is_refused(world):
    status, answer = await post_message(world.fake, world.general.id, {"embeds": [{"fields": [{"value": "3"}]}]})
    assert status == 400
    assert answer["errors"] == {"embeds": {"0": {"fields": {"0": {"name": required()}}}}}
    assert world.fake.posts == []


async def test_every_broken_limit_is_reported_at_once(world):
    message = {"content": "c" * 2001, "embeds": [{"title": "t" * 257}, {"fields": fields(1, value="v" * 1025)}]}
    status, answer = await post_message(world.fake, world.general.id, message)
    assert status == 400
    assert answer["errors"] == {
        "content": too_long(2000),
        "embeds": {"0": {"title": too_long(256)}, "1": {"fields": {"0": {"value": too_long(1024)}}}},
    }


async def test_leading_and_trailing_whitespace_does_not_count_towards_an_embed_limit(world):
    embed = {"title": "  " + "t" * 256 + "\n", "fields": fields(1, value="v" * 1024 + "   ")}
    status, answer = await post_message(world.fake, world.general.id, {"embeds": [embed]})
    assert status == 200, answer


# -- a token reset in the Developer Portal ------------------------------------------------


async def identify(
    ws: aiohttp.ClientWebSocketResponse, token: str, shard: list[int] | None = None, intents: int | None = None
) -> None:
    assert (await ws.receive_json())["op"] == 10  # HELLO
    if intents is None:
        intents = INTENT_GUILDS | INTENT_GUILD_MESSAGES | INTENT_DIRECT_MESSAGES
    properties = {"os": "linux", "browser": "tests", "device": "tests"}
    data = {"token": token, "intents": intents, "properties": properties}
    if shard is not None:
        data["shard"] = shard
    await ws.send_json({"op": OP_IDENTIFY, "d": data})


async def until_ready(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """Read gateway messages until READY; its ``d``."""
    async for msg in ws:
        payload = json.loads(msg.data)
        if payload.get("t") == "READY":
            return payload["d"]
    raise AssertionError(f"the socket closed with {ws.close_code} before READY")


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    """Read on (events after READY included) until the server closes the socket; its code and reason."""
    while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
        pass
    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
    return ws.close_code, msg.extra


async def rest_status(fake: FakeDiscord, token: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{fake.url}/api/v10/users/@me", headers={"Authorization": f"Bot {token}"}) as response,
    ):
        return response.status


async def test_revoke_token_closes_the_live_socket_with_4004_and_rest_then_answers_401(world):
    fake = world.fake
    old_token = fake.token
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{fake.url}/gateway/?v=10&encoding=json") as ws:
        await identify(ws, old_token)
        await asyncio.wait_for(until_ready(ws), 5)
        _, closed = await asyncio.wait_for(asyncio.gather(fake.revoke_token(), closed_with(ws)), 5)
    assert closed == (4004, "Authentication failed.")
    assert fake.token != old_token
    assert await rest_status(fake, old_token) == 401
    assert await rest_status(fake, fake.token) == 200


async def test_after_revoke_token_identify_with_the_old_token_is_closed_with_4004(world):
    fake = world.fake
    old_token = fake.token
    await fake.revoke_token()
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{fake.url}/gateway/?v=10&encoding=json") as ws:
        await identify(ws, old_token)
        code, _ = await asyncio.wait_for(closed_with(ws), 5)
    assert code == 4004


async def test_after_revoke_token_the_old_session_cannot_be_resumed(world):
    fake = world.fake
    old_token = fake.token
    url = f"{fake.url}/gateway/?v=10&encoding=json"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            await identify(ws, old_token)
            ready = await asyncio.wait_for(until_ready(ws), 5)
            await asyncio.wait_for(asyncio.gather(fake.revoke_token(), closed_with(ws)), 5)
        async with http.ws_connect(url) as ws:
            assert (await ws.receive_json())["op"] == 10  # HELLO
            resume = {"token": old_token, "session_id": ready["session_id"], "seq": 1}
            await ws.send_json({"op": OP_RESUME, "d": resume})
            answer = await asyncio.wait_for(ws.receive_json(), 5)
    assert answer["op"] == OP_INVALID_SESSION and answer["d"] is False
    assert fake.resumes == 0


# -- sharding -----------------------------------------------------------------------------


async def received_until_closed(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """Every gateway message the socket gets until the server closes it."""
    received = []
    while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
        received.append(json.loads(msg.data))
    return received


def about(payload: dict[str, Any]) -> tuple[str, str | None]:
    """A dispatch as (event, the guild it is about): None for READY and DMs."""
    data = payload["d"]
    return payload["t"], data["id"] if payload["t"] == "GUILD_CREATE" else data.get("guild_id")


async def test_gateway_bot_recommends_the_configured_shard_count():
    fake = FakeDiscord(shard_count=3)
    await fake.start()
    try:
        headers = {"Authorization": f"Bot {fake.token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{fake.url}/api/v10/gateway/bot", headers=headers) as response,
        ):
            answer = await response.json()
    finally:
        await fake.stop()
    assert answer["shards"] == 3
    assert answer["url"] == fake.gateway_url
    assert answer["session_start_limit"]["max_concurrency"] == 1


async def test_each_shard_gets_only_its_guilds_and_their_messages_and_dms_go_to_shard_0():
    fake = FakeDiscord(shard_count=2)
    owner = fake.add_user("owner")
    guilds = [fake.add_guild(f"on shard {shard_id}", owner, shard=(shard_id, 2)) for shard_id in (0, 1)]
    assert [shard_of(guild.id, 2) for guild in guilds] == [0, 1]
    channels = [fake.add_channel(guild) for guild in guilds]
    await fake.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws0,
            http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws1,
        ):
            await identify(ws1, fake.token, [1, 2])
            await identify(ws0, fake.token, [0, 2])
            for shard_id in (0, 1):
                await fake.wait_until_ready(5, shard_id=shard_id)
            assert [s.shard for s in fake.live_sessions] == [(0, 2), (1, 2)]
            for channel in reversed(channels):
                await fake.say(channel, owner, "hello")
            await fake.say_in_dm(owner, "psst")
            await fake.drop_connection()
            received = await asyncio.wait_for(asyncio.gather(received_until_closed(ws0), received_until_closed(ws1)), 5)
    finally:
        await fake.stop()
    for shard_id, payloads in enumerate(received):
        guild_id = str(guilds[shard_id].id)
        ready = payloads[0]["d"]
        assert ready["shard"] == [shard_id, 2]
        assert ready["guilds"] == [{"id": guild_id, "unavailable": True}]
        expected = [("READY", None), ("GUILD_CREATE", guild_id), ("MESSAGE_CREATE", guild_id)]
        if shard_id == 0:
            expected.append(("MESSAGE_CREATE", None))  # the DM
        assert [about(p) for p in payloads] == expected


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], [0, 0]])
async def test_identify_with_an_invalid_shard_is_closed_with_4010(world, shard):
    world.fake.shard_count = 2
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{world.fake.gateway_url}?v=10&encoding=json") as ws:
        await identify(ws, world.fake.token, shard)
        closed = await asyncio.wait_for(closed_with(ws), 5)
    assert closed == (4010, "Invalid shard.")


@pytest.mark.parametrize("shard", [None, [0, 1]])
async def test_identify_with_fewer_shards_than_discord_requires_is_closed_with_4011(world, shard):
    world.fake.shard_count = 2
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{world.fake.gateway_url}?v=10&encoding=json") as ws:
        await identify(ws, world.fake.token, shard)
        closed = await asyncio.wait_for(closed_with(ws), 5)
    assert closed == (4011, "Sharding required.")
    assert world.fake.sessions == {}


# -- member roles -------------------------------------------------------------------------

# Guild Member Update's fields (https://discord.com/developers/docs/events/gateway-events#guild-member-update)
MEMBER_UPDATE_FIELDS = {
    "guild_id",
    "roles",
    "user",
    "nick",
    "avatar",
    "banner",
    "joined_at",
    "premium_since",
    "deaf",
    "mute",
    "pending",
    "communication_disabled_until",
    "flags",
}
WITH_MEMBERS = INTENT_GUILDS | INTENT_GUILD_MEMBERS | INTENT_GUILD_MESSAGES
WITHOUT_MEMBERS = INTENT_GUILDS | INTENT_GUILD_MESSAGES
MISSING_PERMISSIONS = (403, {"message": "Missing Permissions", "code": 50013})


async def rest(
    fake: FakeDiscord, method: str, path: str, body: Any = None, *, reason: str | None = None
) -> tuple[int, Any, Mapping[str, str]]:
    """A raw REST call as the bot: the status, the JSON answer (None when there is none) and the headers."""
    headers = {"Authorization": f"Bot {fake.token}"}
    if reason is not None:
        headers["X-Audit-Log-Reason"] = urllib.parse.quote(reason, safe="/ ")  # as discord.py sends it
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{fake.url}/api/v10{path}", json=body, headers=headers) as response,
    ):
        answer = await response.json() if response.content_type == "application/json" else None
        return response.status, answer, response.headers


def role_path(guild_id: int, user_id: int, role_id: int) -> str:
    return f"/guilds/{guild_id}/members/{user_id}/roles/{role_id}"


async def events_during(
    fake: FakeDiscord, action: Callable[[], Awaitable[Any]], *clients: tuple[list[int] | None, int]
) -> tuple[Any, list[list[tuple[str, dict[str, Any]]]]]:
    """Connect a gateway client per ``(shard, intents)``, run ``action()``, then drop every socket.

    Returns what ``action`` returned and, per client, the dispatches it received after READY
    and GUILD_CREATE, as ``(event, data)``.
    """
    clients = clients or ((None, WITH_MEMBERS),)
    async with aiohttp.ClientSession() as http:
        sockets = [await http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") for _ in clients]
        try:
            for ws, (shard, intents) in zip(sockets, clients, strict=True):
                await identify(ws, fake.token, shard, intents)
            await fake.wait_for(lambda: len(fake.live_sessions) == len(clients), 5, "every client to be READY")
            result = await action()
            await fake.drop_connection()
            received = await asyncio.wait_for(asyncio.gather(*(received_until_closed(ws) for ws in sockets)), 5)
        finally:
            for ws in sockets:
                await ws.close()
    skip = {"READY", "GUILD_CREATE"}
    return result, [
        [(p["t"], p["d"]) for p in payloads if p["op"] == 0 and p["t"] not in skip] for payloads in received
    ]


@dataclass
class Roles:
    """The world's roles around the bot's own ("Tally", position 5, given Manage Roles here)."""

    tally: Role
    low: Role  # position 1: the bot may give it
    equal: Role  # position 5, the bot's own height
    high: Role  # position 9
    managed: Role  # an integration's role, position 1
    bot_role: Role  # otherbot's own role, position 1


@pytest.fixture
def roles(world) -> Roles:
    fake, guild = world.fake, world.guild
    tally = next(r for r in guild.roles.values() if r.name == "Tally")
    tally.permissions |= MANAGE_ROLES
    return Roles(
        tally,
        fake.add_role(guild, "Level 5", position=1),
        fake.add_role(guild, "Equal", position=5),
        fake.add_role(guild, "Staff", position=9),
        fake.add_role(guild, "Twitch Subscriber", position=1, managed=True),
        fake.add_role(guild, "otherbot", position=1, bot=world.other_bot),
    )


async def test_role_put_and_delete_answer_204_and_dispatch_guild_member_update_to_the_guilds_shard_only():
    fake = FakeDiscord(shard_count=2)
    guild = fake.add_guild("on shard 1", shard=(1, 2))
    tally = fake.add_role(guild, "Tally", MANAGE_ROLES, position=5)
    guild.members[fake.bot_user.id].roles.append(tally.id)
    level = fake.add_role(guild, "Level 5", position=1)
    alice = fake.add_member(guild, "alice")
    await fake.start()

    async def add_then_remove():
        added = await rest(fake, "PUT", role_path(guild.id, alice.id, level.id))
        roles_after_put = list(guild.members[alice.id].roles)
        removed = await rest(fake, "DELETE", role_path(guild.id, alice.id, level.id))
        return added, roles_after_put, removed

    try:
        (added, roles_after_put, removed), (shard_0, shard_1, shard_1_without_members) = await events_during(
            fake, add_then_remove, ([0, 2], WITH_MEMBERS), ([1, 2], WITH_MEMBERS), ([1, 2], WITHOUT_MEMBERS)
        )
    finally:
        await fake.stop()
    assert added[:2] == (204, None) and removed[:2] == (204, None)
    assert roles_after_put == [level.id] and guild.members[alice.id].roles == []
    assert shard_0 == [] and shard_1_without_members == []
    assert [event for event, _ in shard_1] == ["GUILD_MEMBER_UPDATE", "GUILD_MEMBER_UPDATE"]
    after_put, after_delete = (data for _, data in shard_1)
    assert set(after_put) == MEMBER_UPDATE_FIELDS
    assert after_put["guild_id"] == str(guild.id)
    assert after_put["user"] == alice.payload()
    assert after_put["roles"] == [str(level.id)]
    assert after_delete["roles"] == []
    assert fake.audit_log == [
        {**audit, "guild_id": guild.id, "target_id": alice.id, "reason": None, "action": "member_role_update"}
        for audit in ({"added": [level.id], "removed": []}, {"added": [], "removed": [level.id]})
    ]


async def test_patch_member_replaces_the_roles_and_sets_the_nick_and_answers_the_member(world, roles):
    fake, guild = world.fake, world.guild
    roles.tally.permissions |= MANAGE_NICKNAMES
    path = f"/guilds/{guild.id}/members/{world.mod.id}"
    body = {"roles": [str(roles.low.id)], "nick": "Moddy"}

    async def patch():
        return await rest(fake, "PATCH", path, body, reason="level 5 reward")

    (status, answer, _), (events,) = await events_during(fake, patch)
    member = guild.members[world.mod.id]
    assert (member.roles, member.nick) == ([roles.low.id], "Moddy")
    assert status == 200 and answer == member.payload()
    assert [event for event, _ in events] == ["GUILD_MEMBER_UPDATE"]
    assert events[0][1] == member.payload() | {"guild_id": str(guild.id)}
    target = {"guild_id": guild.id, "target_id": world.mod.id, "reason": "level 5 reward"}
    assert fake.audit_log == [
        {**target, "action": "member_role_update", "added": [roles.low.id], "removed": [world.mod_role.id]},
        {**target, "action": "member_update", "nick": "Moddy"},
    ]


async def test_a_change_to_nothing_succeeds_and_dispatches_nothing(world, roles):
    fake, guild = world.fake, world.guild
    guild.members[world.alice.id].roles = [roles.low.id, roles.high.id]
    path = f"/guilds/{guild.id}/members/{world.alice.id}"
    level_10 = fake.add_role(guild, "Level 10", position=2)

    async def change_nothing():
        return [
            (await rest(fake, "PUT", role_path(guild.id, world.alice.id, roles.low.id)))[0],  # she has it
            (await rest(fake, "DELETE", role_path(guild.id, world.alice.id, level_10.id)))[0],  # she has not
            (await rest(fake, "PATCH", path, {"roles": [str(roles.high.id), str(roles.low.id)]}))[0],  # same set
        ]

    statuses, (events,) = await events_during(fake, change_nothing)
    assert statuses == [204, 204, 200]
    assert events == []
    assert fake.audit_log == []
    assert guild.members[world.alice.id].roles == [roles.low.id, roles.high.id]


async def change_role(world, how: str, role_id: int, user_id: int | None = None) -> tuple[int, Any]:
    """Give (PUT, "PATCH add") or take away (DELETE, "PATCH remove") a role of alice's, as the bot."""
    guild, user_id = world.guild, user_id or world.alice.id
    if how in ("PUT", "DELETE"):
        status, answer, _ = await rest(world.fake, how, role_path(guild.id, user_id, role_id))
        return status, answer
    member = guild.members[user_id]
    roles = [r for r in member.roles if r != role_id] if how == "PATCH remove" else [*member.roles, role_id]
    body = {"roles": [str(r) for r in roles]}
    status, answer, _ = await rest(world.fake, "PATCH", f"/guilds/{guild.id}/members/{user_id}", body)
    return status, answer


FORBIDDEN_ROLES = [
    pytest.param(how, which, id=f"{how} {which}")
    for which in ("equal", "high", "managed", "bot_role", "everyone")
    for how in ("PUT", "DELETE", "PATCH add", "PATCH remove")
    if not (which == "everyone" and how == "PATCH remove")  # nobody "has" @everyone in their roles
]


@pytest.mark.parametrize(("how", "which"), FORBIDDEN_ROLES)
async def test_a_role_at_or_above_the_bots_highest_or_managed_or_everyone_is_refused_with_50013(
    world, roles, how, which
):
    guild = world.guild
    role_id = guild.id if which == "everyone" else getattr(roles, which).id
    if how in ("DELETE", "PATCH remove") and which != "everyone":
        guild.members[world.alice.id].roles.append(role_id)  # given by someone who may
    before = list(guild.members[world.alice.id].roles)
    assert await change_role(world, how, role_id) == MISSING_PERMISSIONS
    assert guild.members[world.alice.id].roles == before
    assert world.fake.audit_log == []


@pytest.mark.parametrize("how", ["PUT", "DELETE", "PATCH add"])
async def test_without_manage_roles_the_bot_may_change_no_role(world, how):
    low = world.fake.add_role(world.guild, "Level 5", position=1)  # below the bot's, which lacks Manage Roles
    if how == "DELETE":
        world.guild.members[world.alice.id].roles.append(low.id)
    before = list(world.guild.members[world.alice.id].roles)
    assert await change_role(world, how, low.id) == MISSING_PERMISSIONS
    assert world.guild.members[world.alice.id].roles == before


async def test_administrator_grants_manage_roles_but_not_a_role_above_the_bots(world, roles):
    roles.tally.permissions = ADMINISTRATOR
    assert (await change_role(world, "PUT", roles.low.id))[0] == 204
    assert await change_role(world, "PUT", roles.high.id) == MISSING_PERMISSIONS
    assert world.guild.members[world.alice.id].roles == [roles.low.id]


async def test_a_bot_owning_the_guild_may_give_any_role_but_a_managed_one(world, roles):
    world.guild.owner_id = world.fake.bot_user.id
    roles.tally.permissions = 0
    assert (await change_role(world, "PUT", roles.high.id))[0] == 204
    assert await change_role(world, "PUT", roles.managed.id) == MISSING_PERMISSIONS
    assert world.guild.members[world.alice.id].roles == [roles.high.id]


async def test_patch_checks_only_the_roles_it_adds_or_removes(world, roles):
    member = world.guild.members[world.alice.id]
    member.roles = [roles.high.id, roles.managed.id]  # above the bot, and managed: both stay
    assert (await change_role(world, "PATCH add", roles.low.id))[0] == 200
    assert member.roles == [roles.high.id, roles.managed.id, roles.low.id]
    assert await change_role(world, "PATCH remove", roles.managed.id) == MISSING_PERMISSIONS
    assert await change_role(world, "PATCH remove", roles.high.id) == MISSING_PERMISSIONS
    assert (await change_role(world, "PATCH remove", roles.low.id))[0] == 200
    assert member.roles == [roles.high.id, roles.managed.id]


@pytest.mark.parametrize("how", ["PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize(
    ("unknown", "error"),
    [
        ("guild", {"message": "Unknown Guild", "code": 10004}),
        ("member", {"message": "Unknown Member", "code": 10007}),
        ("role", {"message": "Unknown Role", "code": 10011}),
    ],
)
async def test_an_unknown_guild_member_or_role_is_a_404_with_discords_code(world, roles, how, unknown, error):
    guild_id, user_id, role_id = world.guild.id, world.alice.id, roles.low.id
    if unknown == "guild":
        guild_id = 123456789012345678
    elif unknown == "member":
        user_id = world.fake.add_user("stranger").id  # a user, but not in this guild
    else:
        role_id = 123456789012345678
    if how == "PATCH":
        path, body = f"/guilds/{guild_id}/members/{user_id}", {"roles": [str(role_id)]}
    else:
        path, body = role_path(guild_id, user_id, role_id), None
    status, answer, _ = await rest(world.fake, how, path, body)
    assert (status, answer) == (404, error)
    assert world.guild.members[world.alice.id].roles == []


async def test_the_audit_log_reason_is_kept_url_decoded(world, roles):
    reason = "Reached level 5 ✨ / gg"
    status, _, _ = await rest(world.fake, "PUT", role_path(world.guild.id, world.alice.id, roles.low.id), reason=reason)
    assert status == 204
    assert world.fake.audit_log == [
        {
            "guild_id": world.guild.id,
            "target_id": world.alice.id,
            "reason": reason,
            "action": "member_role_update",
            "added": [roles.low.id],
            "removed": [],
        }
    ]


async def test_a_nickname_needs_manage_nicknames_and_a_member_below_the_bot(world, roles):
    fake, guild = world.fake, world.guild

    async def nick(user, value):
        status, answer, _ = await rest(fake, "PATCH", f"/guilds/{guild.id}/members/{user.id}", {"nick": value})
        return status, answer

    assert await nick(world.alice, "Al") == MISSING_PERMISSIONS  # the bot lacks Manage Nicknames
    roles.tally.permissions |= MANAGE_NICKNAMES
    assert (await nick(world.alice, "Al"))[0] == 200
    assert await nick(world.owner, "Boss") == MISSING_PERMISSIONS  # never the owner
    guild.members[world.bob.id].roles.append(roles.high.id)
    assert await nick(world.bob, "Bobby") == MISSING_PERMISSIONS  # above the bot
    assert (await nick(world.alice, ""))[1]["nick"] is None  # "" clears it
    assert [m.nick for m in (guild.members[u.id] for u in (world.alice, world.owner, world.bob))] == [None] * 3


async def test_patch_refuses_a_malformed_body_as_invalid_form_body(world, roles):
    fake, path = world.fake, f"/guilds/{world.guild.id}/members/{world.alice.id}"
    status, answer, _ = await rest(fake, "PATCH", path, {"roles": str(roles.low.id)})
    assert (status, answer["code"], list(answer["errors"])) == (400, 50035, ["roles"])
    status, answer, _ = await rest(fake, "PATCH", path, {"roles": [str(roles.low.id), "level5"]})
    assert (status, answer["code"]) == (400, 50035)
    assert answer["errors"] == {
        "roles": {"1": {"_errors": [{"code": "NUMBER_TYPE_COERCE", "message": 'Value "level5" is not snowflake.'}]}}
    }
    roles.tally.permissions |= MANAGE_NICKNAMES
    status, answer, _ = await rest(fake, "PATCH", path, {"nick": "n" * 33})
    assert (status, answer["errors"]["nick"]["_errors"][0]["code"]) == (400, "BASE_TYPE_MAX_LENGTH")
    assert (await rest(fake, "PATCH", path, {"nick": "n" * 32}))[0] == 200
    assert world.guild.members[world.alice.id].roles == []


async def test_patch_fields_the_fake_does_not_model_are_listed_as_unknown(world):
    fake, path = world.fake, f"/guilds/{world.guild.id}/members/{world.alice.id}"
    status, _, _ = await rest(fake, "PATCH", path, {"mute": True, "nick": "x"})
    assert status == 404
    assert fake.unknown_routes == [f"PATCH {path} with mute"]
    fake.unknown_routes.clear()  # the world fixture fails a test that leaves any


def test_role_payloads_say_managed_and_carry_discords_tags(world):
    fake, guild = world.fake, world.guild
    integration = fake.add_role(guild, "Twitch Subscriber", managed=True)
    bot_role = fake.add_role(guild, "otherbot", bot=world.other_bot)
    tally = next(r for r in guild.roles.values() if r.name == "Tally")
    assert integration.payload()["managed"] is True and set(integration.payload()["tags"]) == {"integration_id"}
    assert bot_role.payload()["managed"] is True and bot_role.payload()["tags"] == {"bot_id": str(world.other_bot.id)}
    assert tally.payload()["managed"] is False and "tags" not in tally.payload()  # the world's bot role: unchanged
    assert {r["id"]: r["managed"] for r in guild.payload()["roles"]}[str(bot_role.id)] is True


# -- gateway member events ------------------------------------------------------------------


async def test_member_join_and_leave_dispatch_add_and_remove_with_the_members_intent_only(world, roles):
    fake, guild = world.fake, world.guild
    newcomer = fake.add_user("newcomer")

    async def join_and_leave():
        member = await fake.member_join(guild, newcomer, roles=[roles.low])
        joined = newcomer.id in guild.members
        await fake.member_leave(guild, newcomer)
        return member, joined

    (member, joined), (events, without_members) = await events_during(
        fake, join_and_leave, (None, WITH_MEMBERS), (None, WITHOUT_MEMBERS)
    )
    assert joined and newcomer.id not in guild.members
    assert member.roles == [roles.low.id]
    assert events == [
        ("GUILD_MEMBER_ADD", member.payload() | {"guild_id": str(guild.id)}),
        ("GUILD_MEMBER_REMOVE", {"guild_id": str(guild.id), "user": newcomer.payload()}),
    ]
    assert without_members == []


async def test_update_member_by_someone_else_dispatches_only_a_change(world, roles):
    fake, guild = world.fake, world.guild

    async def updates():
        return [
            await fake.update_member(guild, world.alice, roles=[roles.high]),
            await fake.update_member(guild, world.alice, roles=[roles.high]),  # no change
            await fake.update_member(guild, world.alice, nick="Ally"),
        ]

    changed, (events,) = await events_during(fake, updates)
    assert changed == [True, False, True]
    assert [(event, data["roles"], data["nick"]) for event, data in events] == [
        ("GUILD_MEMBER_UPDATE", [str(roles.high.id)], None),
        ("GUILD_MEMBER_UPDATE", [str(roles.high.id)], "Ally"),
    ]
    assert fake.audit_log == []  # not the bot's doing


async def test_delete_role_removes_it_everywhere_and_dispatches_guild_role_delete(world, roles):
    fake, guild = world.fake, world.guild
    guild.members[world.alice.id].roles = [roles.low.id, roles.high.id]

    async def delete():
        await fake.delete_role(guild, roles.low)

    _, (events, without_members) = await events_during(fake, delete, (None, WITH_MEMBERS), (None, WITHOUT_MEMBERS))
    assert roles.low.id not in guild.roles
    assert guild.members[world.alice.id].roles == [roles.high.id]
    deleted = ("GUILD_ROLE_DELETE", {"guild_id": str(guild.id), "role_id": str(roles.low.id)})
    assert events == [deleted] and without_members == [deleted]  # a GUILDS event: no member update follows
    with pytest.raises(ValueError):
        await fake.delete_role(guild, guild.everyone)


async def test_update_roles_tells_the_gateway_of_each_role_changed_or_created_since_it_was_last_told(world, roles):
    fake, guild = world.fake, world.guild

    async def edit_roles():
        nothing = await fake.update_roles(guild)
        roles.tally.permissions |= ADMINISTRATOR  # edited in Server Settings
        created = fake.add_role(guild, "Created while the bot runs", position=2)
        changed = await fake.update_role_permissions(guild)
        again = await fake.update_roles(guild)
        await fake.move_role(guild, roles.low, position=3)
        return nothing, created, changed, again

    (nothing, created, changed, again), (events, without_members) = await events_during(
        fake, edit_roles, (None, WITH_MEMBERS), (None, WITHOUT_MEMBERS)
    )
    assert (nothing, changed, again) == ([], ["GUILD_ROLE_UPDATE", "GUILD_ROLE_CREATE"], [])
    expected = [
        ("GUILD_ROLE_UPDATE", {"guild_id": str(guild.id), "role": roles.tally.payload()}),
        ("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": created.payload()}),
        ("GUILD_ROLE_UPDATE", {"guild_id": str(guild.id), "role": roles.low.payload()}),
    ]
    assert events == expected and without_members == expected  # GUILDS events
    assert events[-1][1]["role"]["position"] == 3


async def test_wait_for_request_waits_for_a_new_request_unless_told_where_to_start(world, roles):
    fake = world.fake
    path = role_path(world.guild.id, world.alice.id, roles.low.id)
    assert (await rest(fake, "PUT", path))[0] == 204
    assert await fake.wait_for_request("PUT", path, after=0) == ("PUT", path, None)  # the one made already
    with pytest.raises(AssertionError, match="timed out"):
        await fake.wait_for_request("PUT", path, timeout=0.05)  # from the call on: none yet
    count = len(fake.requests)
    waiting = asyncio.create_task(fake.wait_for_request("PUT", path))
    assert (await rest(fake, "PUT", path))[0] == 204
    assert await asyncio.wait_for(waiting, 5) == ("PUT", path, None)
    assert len(fake.requests) == count + 1


async def test_discord_py_follows_the_fakes_member_and_role_events(world, roles, monkeypatch):
    """discord.py's own parsing of these payloads: a client's cache follows every change."""
    fake = world.fake
    monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.url}/api/v10")
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    intents = discord.Intents.default()
    intents.members = True
    client = discord.Client(intents=intents)
    running = asyncio.create_task(client.start(fake.token))
    try:
        await asyncio.wait_for(client.wait_until_ready(), 10)
        guild = client.get_guild(world.guild.id)
        assert guild.get_role(roles.managed.id).managed and guild.get_role(roles.bot_role.id).is_bot_managed()
        assert not guild.get_role(roles.tally.id).managed

        updated = client.wait_for("member_update", timeout=5)
        await guild.get_member(world.alice.id).add_roles(guild.get_role(roles.low.id), reason="level 5")
        _, after = await updated
        assert [r.id for r in after.roles[1:]] == [roles.low.id]

        joined = client.wait_for("member_join", timeout=5)
        newcomer = fake.add_user("newcomer")
        await fake.member_join(world.guild, newcomer, roles=[roles.low])
        assert [r.id for r in (await joined).roles[1:]] == [roles.low.id]

        left = client.wait_for("member_remove", timeout=5)
        await fake.member_leave(world.guild, newcomer)
        assert (await left).id == newcomer.id

        deleted = client.wait_for("guild_role_delete", timeout=5)
        await fake.delete_role(world.guild, roles.low)
        assert (await deleted).id == roles.low.id
        assert guild.get_member(world.alice.id).roles[1:] == []
    finally:
        await client.close()
        await asyncio.wait_for(running, 10)


# -- rate limits ----------------------------------------------------------------------------


class Clock:
    """A clock a test moves by hand, for the fake to count rate limits in."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower().startswith("x-ratelimit") or k == "Retry-After"}


async def test_a_limited_bucket_counts_down_then_answers_429_with_discords_body_and_headers(world, roles):
    fake, guild = world.fake, world.guild
    fake.clock = clock = Clock()
    fake.limit("member_roles", 2, 10)
    patch = f"/guilds/{guild.id}/members/{world.alice.id}"
    bucket = bucket_hash("member_roles")

    status, _, first = await rest(fake, "PUT", role_path(guild.id, world.alice.id, roles.low.id))
    assert status == 204
    assert first["X-RateLimit-Limit"] == "2" and first["X-RateLimit-Remaining"] == "1"
    assert first["X-RateLimit-Reset-After"] == "10.000" and first["X-RateLimit-Bucket"] == bucket
    assert abs(float(first["X-RateLimit-Reset"]) - (time.time() + 10)) < 1
    assert "X-RateLimit-Scope" not in first and "Retry-After" not in first  # only on a 429
    clock.now += 1
    status, _, second = await rest(fake, "DELETE", role_path(guild.id, world.alice.id, roles.low.id))
    assert (status, second["X-RateLimit-Remaining"], second["X-RateLimit-Reset-After"]) == (204, "0", "9.000")

    clock.now += 1  # PATCH shares the bucket: refused
    status, answer, refused = await rest(fake, "PATCH", patch, {"roles": [str(roles.low.id)]})
    assert status == 429
    assert answer == {"message": "You are being rate limited.", "retry_after": 8.0, "global": False}
    assert {k: v for k, v in rate_limit_headers(refused).items() if k != "X-RateLimit-Reset"} == {
        "Retry-After": "8",
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": "8.000",
        "X-RateLimit-Bucket": bucket,
        "X-RateLimit-Scope": "user",
    }
    assert refused["Via"] == "1.1 google"  # discord.py takes a 429 without it for a Cloudflare ban
    assert guild.members[world.alice.id].roles == []  # the refused request did nothing
    assert fake.rate_limited == [RateLimitHit("member_roles", guild.id, "PATCH", patch, 1002.0, 8.0, 1010.0)]

    other = fake.add_guild("Other", owner=fake.bot_user)  # its own count: the guild is the major parameter
    low = fake.add_role(other, "Level 5")
    member = fake.add_member(other, "zoe")
    status, _, headers = await rest(fake, "PUT", role_path(other.id, member.id, low.id))
    assert (status, headers["X-RateLimit-Remaining"], headers["X-RateLimit-Bucket"]) == (204, "1", bucket)

    clock.now = 1009.5  # too early: refused again, and marked
    status, answer, _ = await rest(fake, "PUT", role_path(guild.id, world.alice.id, roles.low.id))
    assert (status, answer["retry_after"]) == (429, 0.5)
    clock.now = 1010.0  # the reset
    status, _, headers = await rest(fake, "PUT", role_path(guild.id, world.alice.id, roles.low.id))
    assert (status, headers["X-RateLimit-Remaining"]) == (204, "1")
    assert [(r.guild_id, r.status, r.early) for r in fake.bucket_requests] == [
        (guild.id, 204, False),
        (guild.id, 204, False),
        (guild.id, 429, False),
        (other.id, 204, False),
        (guild.id, 429, True),
        (guild.id, 204, False),
    ]


async def test_routes_outside_a_limited_bucket_carry_no_rate_limit_headers_and_limits_can_be_lifted(world, roles):
    fake = world.fake
    fake.clock = Clock()
    fake.limit("member_roles", 1, 10)
    status, _, headers = await rest(fake, "GET", "/users/@me")
    assert status == 200 and rate_limit_headers(headers) == {}
    path = role_path(world.guild.id, world.alice.id, roles.low.id)
    assert [(await rest(fake, "PUT", path))[0] for _ in range(2)] == [204, 429]
    fake.limit("member_roles", None)
    status, _, headers = await rest(fake, "PUT", path)
    assert status == 204 and rate_limit_headers(headers) == {}
    with pytest.raises(ValueError):
        fake.limit("messages", 1, 1)


async def test_a_shared_limit_shows_no_headers_until_its_429_says_shared(world, roles):
    fake = world.fake
    fake.clock = Clock()
    fake.limit("member_roles", 1, 5, "shared")
    path = role_path(world.guild.id, world.alice.id, roles.low.id)
    status, _, headers = await rest(fake, "PUT", path)
    assert status == 204 and rate_limit_headers(headers) == {}  # nothing to wait on in advance
    status, answer, headers = await rest(fake, "PUT", path)
    assert (status, answer["retry_after"], answer["global"]) == (429, 5.0, False)
    assert headers["X-RateLimit-Scope"] == "shared" and headers["Retry-After"] == "5"


async def test_the_global_limit_answers_429_global_on_any_route(world):
    fake = world.fake
    fake.clock = Clock()
    fake.limit("global", 1, 5)
    status, _, headers = await rest(fake, "GET", "/users/@me")
    assert status == 200 and rate_limit_headers(headers) == {}  # Discord shows the global limit only on a 429
    status, answer, headers = await rest(fake, "GET", "/oauth2/applications/@me")
    assert status == 429
    assert answer == {"message": "You are being rate limited.", "retry_after": 5.0, "global": True}
    assert rate_limit_headers(headers) == {
        "Retry-After": "5",
        "X-RateLimit-Global": "true",
        "X-RateLimit-Scope": "global",
    }
    assert [hit.is_global for hit in fake.rate_limited] == [True]
    fake.limit("global", None)
    assert (await rest(fake, "GET", "/oauth2/applications/@me"))[0] == 200


@pytest.mark.parametrize("unsync_clock", [True, False], ids=["reset-after", "reset-timestamp"])
async def test_discord_py_gets_every_change_through_a_limited_bucket_and_never_retries_early(
    world, roles, monkeypatch, unsync_clock
):
    fake, guild = world.fake, world.guild
    monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.url}/api/v10")
    fake.limit("member_roles", 2, 0.5)
    # Another process with this token has just used the bucket up: discord.py's first request gets the 429.
    for _ in range(2):
        assert (await rest(fake, "PUT", role_path(guild.id, world.bob.id, roles.low.id)))[0] == 204
    rewards = [fake.add_role(guild, f"Reward {i}", position=1) for i in range(4)]
    http = discord.http.HTTPClient(asyncio.get_running_loop(), unsync_clock=unsync_clock)
    await http.static_login(fake.token)
    try:
        adds = (http.add_role(guild.id, world.alice.id, role.id, reason="reward") for role in rewards)
        await asyncio.wait_for(asyncio.gather(*adds), 20)
        await asyncio.wait_for(http.remove_role(guild.id, world.alice.id, rewards[0].id), 10)
        member = await asyncio.wait_for(http.edit_member(guild.id, world.alice.id, roles=[str(roles.low.id)]), 10)
    finally:
        await http.close()
    assert member["roles"] == [str(roles.low.id)] == [str(r) for r in guild.members[world.alice.id].roles]
    counted = fake.bucket_requests
    assert [r.status for r in counted if r.status != 429] == [204] * 2 + [204] * 4 + [204, 200]
    # One 429: the first request, which could not know the bucket was used up. After it the
    # X-RateLimit-* headers of each answer let discord.py wait before the bucket refused it.
    assert [(hit.method, hit.bucket) for hit in fake.rate_limited] == [("PUT", "member_roles")]
    assert [r for r in counted if r.early] == []  # every retry_after and every exhausted bucket waited out


async def test_discord_py_waits_out_a_global_rate_limit(world, monkeypatch):
    fake = world.fake
    monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.url}/api/v10")
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    await http.static_login(fake.token)
    fake.limit("global", 1, 0.3)
    try:
        users = await asyncio.wait_for(asyncio.gather(*(http.get_user(world.alice.id) for _ in range(3))), 10)
    finally:
        await http.close()
    assert [u["id"] for u in users] == [str(world.alice.id)] * 3
    assert fake.rate_limited and all(hit.is_global for hit in fake.rate_limited)
    assert [r for r in fake.bucket_requests if r.early] == []


async def test_put_on_members_and_delete_on_bans_are_neither_kicks_nor_bans(world):
    fake, guild = world.fake, world.guild
    add_member = f"/guilds/{guild.id}/members/{world.alice.id}"  # Add Guild Member: an OAuth2 route
    unban = f"/guilds/{guild.id}/bans/{world.bob.id}"
    assert (await rest(fake, "PUT", add_member, {}))[0] == 404
    assert (await rest(fake, "DELETE", unban))[0] == 404
    assert fake.unknown_routes == [f"PUT {add_member}", f"DELETE {unban}"]
    assert fake.audit_log == [] and guild.bans == set() and world.alice.id in guild.members
    fake.unknown_routes.clear()  # the world fixture fails a test that leaves any


# -- editing messages -----------------------------------------------------------------------


def message_path(channel_id: int, message_id: int | str) -> str:
    return f"/channels/{channel_id}/messages/{message_id}"


async def edit_message(fake: FakeDiscord, channel_id: int, message_id: int | str, body: Any) -> tuple[int, Any]:
    """PATCH a message as the bot would, with raw HTTP; the status and the JSON answer."""
    status, answer, _ = await rest(fake, "PATCH", message_path(channel_id, message_id), body)
    return status, answer


async def test_an_edit_answers_the_whole_message_and_dispatches_message_update_with_the_guild_messages_intent(world):
    fake, general = world.fake, world.general
    content = f"Reward roles synced, <@{world.alice.id}>"

    async def post_then_edit():
        _, posted = await post_message(fake, general.id, {"content": "Syncing: 0 of 3", "embeds": [{"title": "Sync"}]})
        edited = await edit_message(
            fake, general.id, posted["id"], {"content": content, "allowed_mentions": {"parse": []}}
        )
        return posted, edited

    (posted, (status, edited)), (events, without_messages) = await events_during(
        fake, post_then_edit, (None, WITH_MEMBERS), (None, INTENT_GUILDS)
    )
    assert status == 200
    assert posted["edited_timestamp"] is None and edited["edited_timestamp"] is not None
    assert datetime.fromisoformat(edited["edited_timestamp"]) >= datetime.fromisoformat(posted["timestamp"])
    # the same message (ID, timestamp, author, member, embeds kept), with the new content
    assert edited == posted | {"content": content, "edited_timestamp": edited["edited_timestamp"]}
    # Message Update: a message object with MESSAGE_CREATE's extra fields (guild_id, member, mentions)
    assert events == [("MESSAGE_CREATE", posted), ("MESSAGE_UPDATE", edited)]
    assert {"guild_id", "member", "mentions"} <= set(edited) and edited["tts"] is False
    assert without_messages == []
    [post] = fake.posts
    assert (post.id, post.content, post.embeds) == (int(posted["id"]), content, [{"title": "Sync"}])
    assert post.edited_timestamp == edited["edited_timestamp"]
    assert [(v.content, v.embeds, v.edited_timestamp) for v in post.edits] == [
        ("Syncing: 0 of 3", [{"title": "Sync"}], None)
    ]
    assert fake.messages[post.id] == edited


async def test_an_edit_makes_the_mentions_anew_under_its_own_allowed_mentions(world):
    fake, general, alice = world.fake, world.general, world.alice
    _, posted = await post_message(fake, general.id, {"content": "hello", "allowed_mentions": {"parse": []}})
    status, edited = await edit_message(fake, general.id, posted["id"], {"content": f"<@{alice.id}> reached level 5"})
    assert status == 200
    assert [m["id"] for m in edited["mentions"]] == [str(alice.id)]  # no allowed_mentions: every mention counts
    post = fake.posts[0]
    assert (post.allowed_mentions, post.pings["users"]) == (None, [alice.id])
    _, edited = await edit_message(
        fake, general.id, posted["id"], {"content": f"<@{alice.id}> reached level 6", "allowed_mentions": {"parse": []}}
    )
    assert edited["mentions"] == [] and post.pings["users"] == []
    assert [v.pings["users"] for v in post.edits] == [[], [alice.id]]


async def test_an_edit_replaces_the_fields_it_gives_and_null_clears_one_but_not_down_to_nothing(world):
    fake, general = world.fake, world.general
    _, posted = await post_message(fake, general.id, {"content": "Syncing", "embeds": [{"title": "0 of 3"}]})
    post, message_id = fake.posts[0], posted["id"]
    status, edited = await edit_message(fake, general.id, message_id, {"embeds": [{"title": "1 of 3"}]})
    assert (status, edited["content"], edited["embeds"]) == (200, "Syncing", [{"title": "1 of 3"}])
    status, edited = await edit_message(fake, general.id, message_id, {"content": None})
    assert (status, edited["content"], edited["embeds"]) == (200, "", [{"title": "1 of 3"}])
    status, answer = await edit_message(fake, general.id, message_id, {"embeds": None})
    assert (status, answer) == (400, {"message": "Cannot send an empty message", "code": 50006})
    assert (post.content, post.embeds, len(post.edits)) == ("", [{"title": "1 of 3"}], 2)  # the refused edit: none
    status, unchanged = await edit_message(fake, general.id, message_id, {"tts": False})  # discord.py sends tts
    assert (status, unchanged) == (200, edited)
    assert len(post.edits) == 2  # changing nothing is no edit


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("unknown channel", (404, {"message": "Unknown Channel", "code": 10003})),
        ("unknown message", (404, {"message": "Unknown Message", "code": 10008})),
        ("message of another channel", (404, {"message": "Unknown Message", "code": 10008})),
        ("another user's message", (403, {"message": "Cannot edit a message authored by another user", "code": 50005})),
        ("channel the bot cannot see", (403, {"message": "Missing Access", "code": 50001})),
    ],
)
async def test_an_edit_discord_refuses_is_answered_with_its_code_and_changes_nothing(world, case, error):
    fake, general = world.fake, world.general
    _, posted = await post_message(fake, general.id, {"content": "mine"})
    channel_id, message_id = general.id, posted["id"]
    if case == "unknown channel":
        channel_id = 123456789012345678
    elif case == "unknown message":
        message_id = 123456789012345678
    elif case == "message of another channel":
        channel_id = fake.add_channel(world.guild, "other").id
    elif case == "another user's message":
        message_id = (await fake.say(general, world.alice, "hers"))["id"]
    else:
        general.overwrites.append(Overwrite(fake.bot_user.id, 1, deny=VIEW_CHANNEL))
    assert await edit_message(fake, channel_id, message_id, {"content": "edited"}) == error
    assert [(p.content, p.edits) for p in fake.posts] == [("mine", [])]


async def test_an_edit_needs_no_send_messages_permission(world):
    fake, general = world.fake, world.general
    _, posted = await post_message(fake, general.id, {"content": "Syncing"})
    general.overwrites.append(Overwrite(fake.bot_user.id, 1, deny=SEND_MESSAGES))
    assert (await post_message(fake, general.id, {"content": "more"}))[0] == 403
    status, edited = await edit_message(fake, general.id, posted["id"], {"content": "Synced"})
    assert (status, edited["content"]) == (200, "Synced")


@pytest.mark.parametrize(("message", "limit", "errors"), LIMITS)
async def test_an_edit_is_held_to_the_limits_of_posting(world, message, limit, errors):
    fake, general = world.fake, world.general
    _, posted = await post_message(fake, general.id, {"content": "Syncing"})
    status, answer = await edit_message(fake, general.id, posted["id"], message(limit + 1))
    assert (status, answer) == (400, {"code": 50035, "message": "Invalid Form Body", "errors": errors})
    assert fake.posts[0].edits == []
    status, answer = await edit_message(fake, general.id, posted["id"], message(limit))
    assert status == 200, answer
    assert len(fake.posts[0].edits) == 1


async def test_edit_fields_the_fake_does_not_model_are_listed_as_unknown(world):
    fake, general = world.fake, world.general
    _, posted = await post_message(fake, general.id, {"content": "Syncing"})
    status, _ = await edit_message(fake, general.id, posted["id"], {"content": "x", "flags": 4})
    assert status == 404
    assert fake.unknown_routes == [f"PATCH {message_path(general.id, posted['id'])} with flags"]
    fake.unknown_routes.clear()  # the world fixture fails a test that leaves any


async def test_edits_count_against_a_message_edit_limit_per_channel(world):
    fake, general = world.fake, world.general
    fake.clock = Clock()
    fake.limit("message_edit", 1, 5)
    other = fake.add_channel(world.guild, "other")
    _, in_general = await post_message(fake, general.id, {"content": "a"})
    _, in_other = await post_message(fake, other.id, {"content": "b"})  # posting is another bucket
    path = message_path(general.id, in_general["id"])
    status, _, headers = await rest(fake, "PATCH", path, {"content": "a2"})
    assert (status, headers["X-RateLimit-Remaining"], headers["X-RateLimit-Bucket"]) == (
        200,
        "0",
        bucket_hash("message_edit"),
    )
    status, answer, _ = await rest(fake, "PATCH", path, {"content": "a3"})
    assert (status, answer["retry_after"]) == (429, 5.0)
    assert (await edit_message(fake, other.id, in_other["id"], {"content": "b2"}))[0] == 200  # its own count
    assert fake.rate_limited == [RateLimitHit("message_edit", general.id, "PATCH", path, 1000.0, 5.0, 1005.0)]
    assert (fake.rate_limited[0].channel_id, fake.rate_limited[0].guild_id) == (general.id, None)
    assert [(r.channel_id, r.status) for r in fake.bucket_requests] == [
        (general.id, 200),
        (general.id, 429),
        (other.id, 200),
    ]
    assert [p.content for p in fake.posts] == ["a2", "b2"]


async def test_wait_for_edit_returns_the_post_once_an_edit_satisfies_the_predicate(world):
    fake, general = world.fake, world.general
    _, posted = await post_message(fake, general.id, {"content": "0 of 3"})
    message_id = int(posted["id"])
    with pytest.raises(AssertionError, match="timed out"):
        await fake.wait_for_edit(message_id, timeout=0.05)  # not edited yet
    waiting = asyncio.create_task(fake.wait_for_edit(message_id, lambda post: post.content == "3 of 3"))
    for content in ("1 of 3", "3 of 3", "Done"):
        assert (await edit_message(fake, general.id, message_id, {"content": content}))[0] == 200
    post = await asyncio.wait_for(waiting, 5)  # "3 of 3" counts, though "Done" replaced it
    assert post is fake.posts[0] and post.content == "Done"
    assert [v.content for v in post.edits] == ["0 of 3", "1 of 3", "3 of 3"]
    assert await fake.wait_for_edit(message_id, timeout=1) is post  # an edit made before the call counts
    with pytest.raises(AssertionError, match="timed out"):
        await fake.wait_for_edit(message_id, lambda post: "error" in post.text, timeout=0.05)


@contextlib.asynccontextmanager
async def discord_client(fake: FakeDiscord, monkeypatch, **options: Any) -> AsyncIterator[discord.Client]:
    """A real discord.py client (members intent), connected to the fake and ready."""
    monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.url}/api/v10")
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    intents = discord.Intents.default()
    intents.members = True
    client = discord.Client(intents=intents, **options)
    running = asyncio.create_task(client.start(fake.token))
    try:
        await asyncio.wait_for(client.wait_until_ready(), 20)
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(running, 10)


async def test_discord_py_edits_its_message_and_sees_the_edit_and_discords_refusal(world, monkeypatch):
    fake = world.fake
    hers = await fake.say(world.general, world.alice, "hello")
    async with discord_client(fake, monkeypatch) as client:
        channel = client.get_channel(world.general.id)
        message = await channel.send("Syncing reward roles")
        seen = client.wait_for("message_edit", timeout=5)
        edited = await message.edit(content="Reward roles synced", embed=discord.Embed(title="Done"))
        before, after = await seen
        with pytest.raises(discord.Forbidden) as refused:
            await channel.get_partial_message(int(hers["id"])).edit(content="not yours")
    assert edited.edited_at is not None and edited.embeds[0].title == "Done"
    assert (before.content, after.content) == ("Syncing reward roles", "Reward roles synced")
    assert after.edited_at == edited.edited_at
    assert refused.value.code == 50005
    [post] = fake.posts
    assert (post.content, [v.content for v in post.edits]) == ("Reward roles synced", ["Syncing reward roles"])


# -- member chunks ----------------------------------------------------------------------------


async def member_requests(
    fake: FakeDiscord, guild_id: int, *requests: dict[str, Any], intents: int = WITH_MEMBERS
) -> list[tuple[str, dict[str, Any]]]:
    """Send REQUEST_GUILD_MEMBERS ``requests`` on one new session; the dispatches that answered them, in order.

    A last request, for the bot's own member with the nonce "last", marks the end: the fake
    answers a socket's requests in order, so every earlier one has been answered (or ignored).
    """
    last = {"guild_id": str(guild_id), "user_ids": [str(fake.bot_user.id)], "limit": 1, "nonce": "last"}
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws:
        await identify(ws, fake.token, intents=intents)
        await asyncio.wait_for(until_ready(ws), 5)
        for request in [*requests, last]:
            await ws.send_json({"op": OP_REQUEST_MEMBERS, "d": request})
        answers = []
        while True:
            payload = await asyncio.wait_for(ws.receive_json(), 10)
            if payload["op"] != 0 or payload["t"] == "GUILD_CREATE":
                continue
            if payload["d"].get("nonce") == "last":
                return answers
            answers.append((payload["t"], payload["d"]))


def whole_guild(guild_id: int, nonce: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"guild_id": str(guild_id), "query": "", "limit": 0}
    if nonce is not None:
        request["nonce"] = nonce
    return request


async def test_the_whole_member_list_comes_in_chunks_of_up_to_1000_with_index_and_count(world):
    fake, guild = world.fake, world.guild
    for i in range(2500):
        fake.add_member(guild, f"member{i}")
    answers = await member_requests(fake, guild.id, whole_guild(guild.id, "all"))
    assert [event for event, _ in answers] == ["GUILD_MEMBERS_CHUNK"] * 3
    chunks = [chunk for _, chunk in answers]
    assert [len(c["members"]) for c in chunks] == [1000, 1000, len(guild.members) - 2000]
    assert [(c["chunk_index"], c["chunk_count"], c["nonce"], c["guild_id"]) for c in chunks] == [
        (i, 3, "all", str(guild.id)) for i in range(3)
    ]
    ids = [m["user"]["id"] for c in chunks for m in c["members"]]
    assert sorted(ids) == sorted(str(u) for u in guild.members)  # each member once
    assert all("not_found" not in c for c in chunks)
    assert chunks[0]["members"][0] == next(iter(guild.members.values())).payload()


async def test_a_prefix_query_and_user_ids_find_at_most_100_members(world):
    fake, guild = world.fake, world.guild
    fans = [fake.add_member(guild, f"fan{i}") for i in range(150)]
    stranger = fake.add_user("stranger")  # not in the guild
    answers = await member_requests(
        fake,
        guild.id,
        {"guild_id": str(guild.id), "query": "FAN", "limit": 0, "nonce": "prefix"},
        {"guild_id": str(guild.id), "query": "fan", "limit": 1000, "nonce": "prefix, limit 1000"},
        {"guild_id": str(guild.id), "query": "fan", "limit": 10, "nonce": "prefix, limit 10"},
        {"guild_id": str(guild.id), "user_ids": [str(u.id) for u in fans[:120]], "limit": 0, "nonce": "120 IDs"},
        {"guild_id": str(guild.id), "user_ids": [str(world.alice.id), str(stranger.id)], "limit": 2, "nonce": "IDs"},
        {"guild_id": str(guild.id), "user_ids": str(world.bob.id), "limit": 1, "nonce": "one ID"},
        {"guild_id": str(guild.id), "query": "nobody", "limit": 10, "nonce": "none"},
    )
    found = {c["nonce"]: [m["user"]["id"] for m in c["members"]] for _, c in answers}
    assert [(c["chunk_index"], c["chunk_count"]) for _, c in answers] == [(0, 1)] * 7
    assert [len(found[n]) for n in ("prefix", "prefix, limit 1000", "prefix, limit 10", "120 IDs")] == [
        100,
        100,
        10,
        100,
    ]
    assert found["IDs"] == [str(world.alice.id)] and answers[4][1]["not_found"] == [str(stranger.id)]
    assert found["one ID"] == [str(world.bob.id)] and answers[5][1]["not_found"] == []
    assert found["none"] == [] and "not_found" not in answers[6][1]


async def test_a_chunk_carries_a_valid_nonce_only(world):
    fake, guild = world.fake, world.guild
    answers = await member_requests(
        fake, guild.id, whole_guild(guild.id), {**whole_guild(guild.id, "n" * 33), "limit": 5}
    )
    assert [("nonce" in chunk, len(chunk["members"])) for _, chunk in answers] == [
        (False, len(guild.members)),
        (False, 5),
    ]


async def test_the_whole_member_list_needs_the_members_intent_or_discord_does_not_answer(world):
    fake, guild = world.fake, world.guild
    answers = await member_requests(fake, guild.id, whole_guild(guild.id, "all"), intents=INTENT_GUILDS)
    assert answers == []


async def test_the_whole_member_list_is_answered_once_per_guild_every_30_seconds(world):
    fake, guild = world.fake, world.guild
    fake.clock = clock = Clock()
    other = fake.add_guild("Other", owner=world.owner)

    async def ask(*requests):
        return [(event, data.get("nonce")) for event, data in await member_requests(fake, guild.id, *requests)]

    assert await ask(
        whole_guild(guild.id, "first"), whole_guild(guild.id, "again"), whole_guild(other.id, "other")
    ) == [
        ("GUILD_MEMBERS_CHUNK", "first"),
        ("RATE_LIMITED", None),
        ("GUILD_MEMBERS_CHUNK", "other"),  # per guild
    ]
    assert fake.gateway_rate_limited == [
        {"opcode": 8, "retry_after": 30.0, "meta": {"guild_id": str(guild.id), "nonce": "again"}}
    ]
    clock.now += 12.5  # a query, or a limit, is not the whole list: never refused
    assert await ask(whole_guild(guild.id, "later"), {**whole_guild(guild.id, "5"), "limit": 5}) == [
        ("RATE_LIMITED", None),
        ("GUILD_MEMBERS_CHUNK", "5"),
    ]
    assert fake.gateway_rate_limited[-1]["retry_after"] == 17.5
    clock.now += 17.5
    assert await ask(whole_guild(guild.id, "after 30 s")) == [("GUILD_MEMBERS_CHUNK", "after 30 s")]
    fake.request_all_members_every = None
    assert await ask(whole_guild(guild.id, "unlimited")) == [("GUILD_MEMBERS_CHUNK", "unlimited")]


async def guild_create(fake: FakeDiscord, intents: int, large_threshold: int | None = None) -> dict[str, Any]:
    """The GUILD_CREATE a new session is sent."""
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws:
        assert (await ws.receive_json())["op"] == 10  # HELLO
        properties = {"os": "linux", "browser": "tests", "device": "tests"}
        data: dict[str, Any] = {"token": fake.token, "intents": intents, "properties": properties}
        if large_threshold is not None:
            data["large_threshold"] = large_threshold
        await ws.send_json({"op": OP_IDENTIFY, "d": data})
        while (payload := await asyncio.wait_for(ws.receive_json(), 5))["t"] != "GUILD_CREATE":
            pass
        return payload["d"]


async def test_guild_create_carries_the_members_discord_sends_when_told_to(world, roles):
    fake, guild = world.fake, world.guild
    fake.enabled_intents |= INTENT_GUILD_PRESENCES
    presences = WITH_MEMBERS | INTENT_GUILD_PRESENCES
    everyone = sorted(str(u) for u in guild.members)

    def members(payload):
        return sorted(m["user"]["id"] for m in payload["members"])

    small = await guild_create(fake, WITH_MEMBERS)
    assert (members(small), small["large"], small["member_count"]) == (everyone, False, len(everyone))  # "all"
    fake.guild_create_members = "discord"
    assert members(await guild_create(fake, WITH_MEMBERS)) == [str(fake.bot_user.id)]  # no presences intent
    assert members(await guild_create(fake, presences)) == everyone  # presences, and not large
    for i in range(60):
        fake.add_member(guild, f"member{i}")
    guild.members[world.alice.id].nick = "Ally"
    large = await guild_create(fake, presences)  # 50 by default: large
    with_role_or_nick = {world.mod.id, world.alice.id, fake.bot_user.id}  # and the bot, which has a role too
    assert (members(large), large["large"]) == (sorted(str(u) for u in with_role_or_nick), True)
    assert large["member_count"] == len(guild.members)
    not_large = await guild_create(fake, presences, large_threshold=250)
    assert (len(not_large["members"]), not_large["large"]) == (len(guild.members), False)
    with pytest.raises(ValueError):
        FakeDiscord(guild_create_members="some")


@pytest.mark.parametrize("at_startup", [False, True], ids=["guild.chunk()", "chunk_guilds_at_startup"])
async def test_discord_py_chunks_a_guild_of_10000_members_from_the_fakes_chunks(world, monkeypatch, at_startup):
    fake, guild = world.fake, world.guild
    fake.guild_create_members = "discord"  # GUILD_CREATE brings only the bot's own member, as on Discord
    for i in range(10_000):
        fake.add_member(guild, f"member{i}")
    async with discord_client(fake, monkeypatch, chunk_guilds_at_startup=at_startup) as client:
        cached = client.get_guild(guild.id)
        if at_startup:  # wait_until_ready waited for the chunks
            members, took = cached.members, 0.0
        else:
            assert (len(cached.members), cached.chunked, cached.large) == (1, False, True)
            started = time.monotonic()
            members = await asyncio.wait_for(cached.chunk(), 10)
            took = time.monotonic() - started
        assert cached.chunked and cached.member_count == len(guild.members) == 10_007
        assert {m.id for m in members} == set(guild.members) == {m.id for m in cached.members}
        assert cached.get_member(world.mod.id).roles[1:] == [cached.get_role(world.mod_role.id)]
    [session] = fake.sessions.values()
    chunks = [p["d"] for p in session.sent if p["t"] == "GUILD_MEMBERS_CHUNK"]
    assert [(c["chunk_index"], c["chunk_count"], len(c["members"])) for c in chunks] == [
        (i, 11, 1000 if i < 10 else 7) for i in range(11)
    ]
    assert took < 5, f"chunking 10,000 members took {took:.1f} s"


async def upload(fake: FakeDiscord, channel_id: int, body: dict[str, Any], files: dict[str, bytes]) -> tuple[int, Any]:
    """POST a message with files as discord.py sends one: multipart, ``payload_json`` then ``files[n]``."""
    form = aiohttp.FormData()
    form.add_field("payload_json", json.dumps(body), content_type="application/json")
    for n, (name, data) in enumerate(files.items()):
        form.add_field(f"files[{n}]", data, filename=name, content_type="application/octet-stream")
    headers = {"Authorization": f"Bot {fake.token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake.url}/api/v10/channels/{channel_id}/messages", data=form, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_a_file_is_posted_with_its_message_or_alone_and_kept(world):
    status, answer = await upload(world.fake, world.general.id, {"content": "here"}, {"data.json": b'{"a": 1}'})
    assert status == 200, answer
    assert [(a["filename"], a["size"]) for a in answer["attachments"]] == [("data.json", 8)]
    status, answer = await upload(world.fake, world.general.id, {}, {"alone.txt": b"x"})  # a file is content enough
    assert status == 200, answer
    assert [post.files for post in world.fake.posts] == [{"data.json": b'{"a": 1}'}, {"alone.txt": b"x"}]


async def test_files_need_attach_files_and_fit_the_upload_limit(world):
    fake = world.fake
    no_files = fake.add_channel(world.guild, "no-files", [Overwrite(world.guild.id, 0, deny=ATTACH_FILES)])
    status, answer = await upload(fake, no_files.id, {"content": "x"}, {"a.txt": b"a"})
    assert (status, answer["code"]) == (403, 50013)
    status, _ = await post_message(fake, no_files.id, {"content": "text needs no Attach Files"})
    assert status == 200
    status, answer = await upload(fake, world.general.id, {}, {"big.bin": b"0" * (UPLOAD_LIMIT + 1)})
    assert (status, answer) == (413, {"message": "Request entity too large", "code": 40005})
    status, _ = await upload(fake, world.general.id, {}, {"fits.bin": b"0" * UPLOAD_LIMIT})
    assert status == 200
    assert [list(post.files) for post in fake.posts] == [[], ["fits.bin"]]


async def test_an_embed_needs_embed_links_where_plain_text_does_not(world):
    fake = world.fake
    no_embeds = fake.add_channel(world.guild, "no-embeds", [Overwrite(fake.bot_user.id, 1, deny=EMBED_LINKS)])
    status, answer = await post_message(fake, no_embeds.id, {"embeds": [{"title": "card"}]})
    assert (status, answer) == (403, {"message": "Missing Permissions", "code": 50013})
    status, _ = await post_message(fake, no_embeds.id, {"content": "**card**"})
    assert status == 200 and [post.content for post in fake.posts] == ["**card**"]
