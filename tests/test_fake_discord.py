"""The fake Discord itself: it must follow Discord's documented rules, or the e2e tests lie."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.fake_discord import (
    ADMINISTRATOR,
    EVERYONE_DEFAULT,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
    OP_IDENTIFY,
    OP_INVALID_SESSION,
    OP_RESUME,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    FakeDiscord,
    Overwrite,
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


async def identify(ws: aiohttp.ClientWebSocketResponse, token: str, shard: list[int] | None = None) -> None:
    assert (await ws.receive_json())["op"] == 10  # HELLO
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
