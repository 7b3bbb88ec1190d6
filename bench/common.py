"""What several of the benchmarks in bench/ share, so that each builds and measures its world alike.

  * a PostgreSQL database of the run's own: the server at
    ``TALLY_BENCH_POSTGRES_URL``, a database created for the run and dropped
    at its end, and the statement that empties its tables;
  * the gateway world of ingest.py and shards.py: guilds of random members,
    their READY and GUILD_CREATE payloads (replies.py builds its one guild's
    GUILD_CREATE from the same parts), MESSAGE_CREATE payloads of skewed
    activity, and the compressed frames Discord would send them as;
  * a bot's gateway connection without a socket, fed frames through
    discord.py's real receive path as from a socket, and waiting for the
    handlers they start;
  * the answer Discord gives a message post, and p50 / p99 of samples.

The scripts put the repository's root on ``sys.path`` before importing this
(it imports ``storage.postgres``); bench/ itself is there already, as the
folder of the script that runs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import statistics
import time
import urllib.parse
import zlib

import asyncpg
import discord
from discord import utils
from discord.gateway import DiscordWebSocket

from storage.postgres import describe

POSTGRES_ADMIN_URL = os.environ.get("TALLY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Empties every table but the schema version (whatever tables this Tally's schema has).
EMPTY_TABLES = (
    "DO $$ BEGIN EXECUTE (SELECT 'TRUNCATE ' || string_agg(format('%I', tablename), ', ') || ' RESTART IDENTITY' "
    "FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'tally_version'); END $$"
)
BOT_ID = 900000000000000001  # Tally's user ID in every bench
STAMP = "2026-11-22T06:00:00.000000+00:00"  # the time of every message
WORDS = [
    "the",
    "a",
    "to",
    "and",
    "of",
    "you",
    "i",
    "it",
    "is",
    "that",
    "in",
    "this",
    "for",
    "on",
    "gg",
    "lol",
    "yes",
    "no",
    "what",
    "when",
    "how",
    "have",
    "just",
    "my",
    "we",
    "game",
    "raid",
    "tonight",
    "anyone",
    "patch",
    "build",
    "stream",
    "meme",
    "cat",
    "dog",
    "coffee",
    "work",
    "school",
    "server",
    "level",
    "rank",
]


# -- a PostgreSQL database of the run's own --------------------------------------------


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` with its database name replaced by ``name``."""
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


async def create_database(admin_url: str, name: str, unanswered: str) -> str | None:
    """Create the database ``name`` on the server; its URL, or None when no server answers.

    Then it prints ``unanswered``, its ``{server}`` (the admin URL without a
    password) and ``{error}`` (the exception's class) filled in.
    """
    try:
        admin = await asyncpg.connect(admin_url, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        print(unanswered.format(server=describe(admin_url), error=type(exc).__name__))
        return None
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return database_url(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# -- the world and its frames -------------------------------------------------------


def skewed_xp(rng: random.Random) -> int:
    """A member's XP as chatting earns it, in steps of 5: most members have little, a few a lot."""
    return 5 * max(1, int(rng.paretovariate(1.2)))


def snowflake(rng: random.Random) -> int:
    return rng.randrange(10**17, 10**18 * 9)


def random_guild(rng: random.Random, guild_id: int, channels: int, members: int, activity: float) -> dict:
    """A guild of the world: random IDs for its channels, 8 roles and its members (drawn in that order)."""
    return {
        "id": guild_id,
        "channels": [snowflake(rng) for _ in range(channels)],
        "roles": [snowflake(rng) for _ in range(8)],
        "members": [snowflake(rng) for _ in range(members)],
        "activity": activity,  # the guild's weight among the messages
    }


def bot_user() -> dict:
    return {"id": str(BOT_ID), "username": "Tally", "discriminator": "0", "avatar": None, "bot": True}


def user_payload(user_id: int, rng: random.Random) -> dict:
    name = f"member_{user_id % 1000003}"
    return {
        "username": name,
        "public_flags": 0,
        "id": str(user_id),
        "global_name": name.title(),
        "discriminator": "0",
        "clan": None,
        "primary_guild": None,
        "avatar_decoration_data": None,
        "avatar": f"{rng.getrandbits(128):032x}",
    }


def ready_and_guilds(
    world: list[dict], rng: random.Random, shard: tuple[int, int] = (0, 1), session_id: str = "bench"
) -> list[dict]:
    """READY and a GUILD_CREATE per guild of ``world``.

    READY carries ``"shard": [shard ID, shard count]`` as Discord's does for a
    sharded IDENTIFY (an unsharded bot ignores it).
    """
    payloads = [
        {
            "op": 0,
            "t": "READY",
            "s": 1,
            "d": {
                "v": 10,
                "user": bot_user(),
                "guilds": [{"id": str(g["id"]), "unavailable": True} for g in world],
                "session_id": session_id,
                "resume_gateway_url": "wss://gateway.invalid",
                "application": {"id": str(BOT_ID), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "shard": list(shard),
            },
        }
    ]
    for g in world:
        member = {"roles": [], "joined_at": "2024-01-01T00:00:00+00:00", "deaf": False, "mute": False, "flags": 0}
        payloads.append(
            guild_create(
                len(payloads) + 1,
                g["id"],
                f"Server {g['id']}",
                g["members"][0],
                roles=[role_payload(g["id"], "@everyone", 3072, 0)]
                + [role_payload(r, f"role{i}", 0, i + 1) for i, r in enumerate(g["roles"])],
                # Discord sends only some members of a large guild
                members=[{"user": user_payload(m, rng), **member} for m in g["members"][:250]],
                member_count=len(g["members"]),
                channels=[channel_payload(c, f"chan{i}", i) for i, c in enumerate(g["channels"])],
                large=True,
            )
        )
    return payloads


def role_payload(role_id: int, name: str, permissions: int, position: int) -> dict:
    return {
        "id": str(role_id),
        "name": name,
        "permissions": str(permissions),
        "position": position,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def channel_payload(channel_id: int, name: str, position: int) -> dict:
    """A text channel."""
    return {"id": str(channel_id), "type": 0, "name": name, "position": position, "permission_overwrites": []}


def guild_create(
    seq: int,
    guild_id: int,
    name: str,
    owner_id: int,
    *,
    roles: list[dict],
    members: list[dict],
    member_count: int,
    channels: list[dict],
    large: bool,
) -> dict:
    """A GUILD_CREATE with sequence number ``seq``: a guild with no emojis, threads, voice or events."""
    return {
        "op": 0,
        "t": "GUILD_CREATE",
        "s": seq,
        "d": {
            "id": str(guild_id),
            "name": name,
            "owner_id": str(owner_id),
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "features": [],
            "large": large,
            "unavailable": False,
            "member_count": member_count,
            "members": members,
            "channels": channels,
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "premium_tier": 0,
            "joined_at": "2024-01-01T00:00:00+00:00",
        },
    }


def messages(world: list[dict], count: int, rng: random.Random, first_seq: int) -> list[dict]:
    """``count`` MESSAGE_CREATE payloads: guilds by their activity, in each a few members write the most."""
    guild_weights = list(itertools.accumulate(g["activity"] for g in world))
    member_weights = {
        g["id"]: list(itertools.accumulate(1.0 / (k + 1) ** 1.1 for k in range(len(g["members"])))) for g in world
    }
    payloads = []
    for i in range(count):
        g = rng.choices(world, cum_weights=guild_weights)[0]
        author = rng.choices(g["members"], cum_weights=member_weights[g["id"]])[0]
        content = " ".join(rng.choices(WORDS, k=rng.randrange(4, 45)))
        payloads.append(
            {
                "op": 0,
                "t": "MESSAGE_CREATE",
                "s": first_seq + i,
                "d": {
                    "type": 0,
                    "tts": False,
                    "timestamp": STAMP,
                    "pinned": False,
                    "nonce": str(snowflake(rng)),
                    "mentions": [],
                    "mention_roles": [],
                    "mention_everyone": False,
                    "member": {
                        "roles": [str(r) for r in rng.sample(g["roles"], 2)],
                        "premium_since": None,
                        "pending": False,
                        "nick": None,
                        "mute": False,
                        "joined_at": "2024-05-01T12:00:00.000000+00:00",
                        "flags": 0,
                        "deaf": False,
                        "communication_disabled_until": None,
                        "banner": None,
                        "avatar": None,
                    },
                    "id": str(snowflake(rng)),
                    "flags": 0,
                    "embeds": [],
                    "edited_timestamp": None,
                    "content": content,
                    "components": [],
                    "channel_id": str(rng.choice(g["channels"])),
                    "author": user_payload(author, rng),
                    "attachments": [],
                    "guild_id": str(g["id"]),
                },
            }
        )
    return payloads


def compress(payloads: list[dict]) -> list[bytes]:
    """One compressed stream (one gateway connection's), framed the way Discord frames it for discord.py's decompressor."""
    kind = utils._ActiveDecompressionContext.COMPRESSION_TYPE
    frames = []
    if kind == "zstd-stream":
        import zstandard

        stream = zstandard.ZstdCompressor().compressobj()
        for p in payloads:
            frames.append(stream.compress(json.dumps(p).encode()) + stream.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    else:
        stream = zlib.compressobj()
        for p in payloads:
            frames.append(stream.compress(json.dumps(p).encode()) + stream.flush(zlib.Z_SYNC_FLUSH))
    return frames


# -- the bot's side of the gateway ----------------------------------------------------


def as_launched(bot: discord.Client) -> int | None:
    """For a sharded bot, what ``launch_shards`` sets once Discord recommends one shard; the shard ID."""
    if not isinstance(bot, discord.AutoShardedClient):
        return None
    bot.shard_count = bot._connection.shard_count = 1
    bot._connection.shard_ids = [0]
    return 0


def gateway(bot: discord.Client, shard_id: int | None) -> DiscordWebSocket:
    """A gateway connection of ``bot``'s without a socket: frames reach it through ``received_message``."""
    ws = DiscordWebSocket(None, loop=asyncio.get_running_loop())
    ws.token = "bench"
    ws._connection = bot._connection
    ws._discord_parsers = bot._connection.parsers
    ws._dispatch = bot.dispatch
    ws.call_hooks = bot._connection.call_hooks
    ws.shard_id = shard_id
    return ws


def event_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("discord.py:") and not t.done()]


async def drain() -> None:
    """Wait until every event handler discord.py scheduled has finished."""
    while tasks := event_tasks():
        await asyncio.wait(tasks)


async def feed(ws: DiscordWebSocket, frames: list[bytes]) -> None:
    """The frames, as from a socket, until every handler they started has finished."""
    for i, frame in enumerate(frames):
        await ws.received_message(frame)
        await asyncio.sleep(0)  # a socket read yields to the loop between frames
        if i % 256 == 255:
            await drain()
    await drain()


def message_answer(message_id: int, channel_id: int, author: dict, content: str, embeds: list[dict]) -> dict:
    """What Discord answers a post to a channel with: the message posted."""
    return {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": author,
        "content": content,
        "embeds": embeds,
        "timestamp": STAMP,
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
        "components": [],
    }


# -- figures --------------------------------------------------------------------------


def p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class StallMonitor:
    """Wakes every millisecond and records how late it woke: the loop's worst stall."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - before - 0.001)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stall-monitor")

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
