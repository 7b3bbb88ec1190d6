"""How much does Tally's XP path cost next to discord.py itself?

Builds realistic compressed MESSAGE_CREATE frames (about 1 KB each, 50 guilds,
thousands of members, skewed activity) and feeds them through discord.py's
real gateway receive path (``DiscordWebSocket.received_message``: transport
decompression, JSON, parsing, dispatch) in one process, for four variants,
alternated over several rounds (in each round: a, b, d, c):

  a  a bare ``commands.Bot`` configured like Tally, with no XP listener: the ceiling
  b  Tally: the real ``Tally`` bot with its real listener and a real database
     file, timed until every pending XP gain is flushed
  d  the same Tally on PostgreSQL: its Database opened on a database of its
     own on the server (created for the run, emptied before each round,
     dropped at the end), flushing every second over the network, timed
     until every pending XP gain is written
  c  the seed chapter's tutorial handler: connect, INSERT OR IGNORE, UPDATE,
     commit for every message

It prints messages/s for each (median over rounds), the ratios b/a, d/a,
d/b and b/c, the worst event-loop stall seen during b and d, and how many
flushes wrote something in each round of b and d. The frames are built
before the rounds and frozen out of the garbage collector's way
(``gc.freeze``), so a collection's pause is the bot's, not the bench's.

Tally is an ``AutoShardedBot``: it gets the settings ``launch_shards`` would
give it after asking Discord (one shard, shard 0), and READY carries
``"shard": [0, 1]`` as Discord's does for a sharded IDENTIFY.

The PostgreSQL server is the one at ``TALLY_BENCH_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres, used only to create and drop
the database ``tally_bench_ingest_<pid>``); when no server answers there,
variant d is skipped with one line.

    .venv/bin/python bench/ingest.py              # the README's figures
    .venv/bin/python bench/ingest.py --quick      # a fast smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiosqlite  # noqa: E402
import asyncpg  # noqa: E402
import discord  # noqa: E402
from discord import utils  # noqa: E402
from discord.ext import commands  # noqa: E402
from discord.gateway import DiscordWebSocket  # noqa: E402

from bot import Tally  # noqa: E402
from config import Settings  # noqa: E402
from db import Database  # noqa: E402
from storage.postgres import describe  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("TALLY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
GUILDS = 50
BOT_ID = 900000000000000001
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


# -- the world and its frames -------------------------------------------------------


def snowflake(rng: random.Random) -> int:
    return rng.randrange(10**17, 10**18 * 9)


def build_world(rng: random.Random) -> list[dict]:
    guilds = []
    for g in range(GUILDS):
        members = rng.randrange(2000, 8000)
        guilds.append(
            {
                "id": 100000000000000000 + g * 1000003,
                "channels": [snowflake(rng) for _ in range(rng.randrange(3, 12))],
                "roles": [snowflake(rng) for _ in range(8)],
                "members": [snowflake(rng) for _ in range(members)],
                "activity": 1.0 / (g + 1) ** 0.8,  # a few busy servers, a long quiet tail
            }
        )
    return guilds


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


def ready_and_guilds(world: list[dict], rng: random.Random) -> list[dict]:
    payloads = [
        {
            "op": 0,
            "t": "READY",
            "s": 1,
            "d": {
                "v": 10,
                "user": {"id": str(BOT_ID), "username": "Tally", "discriminator": "0", "avatar": None, "bot": True},
                "guilds": [{"id": str(g["id"]), "unavailable": True} for g in world],
                "session_id": "bench",
                "resume_gateway_url": "wss://gateway.invalid",
                "application": {"id": str(BOT_ID), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "shard": [0, 1],  # what Discord sends a sharded IDENTIFY (an unsharded bot ignores it)
            },
        }
    ]
    for g in world:
        roles = [
            {
                "id": str(g["id"]),
                "name": "@everyone",
                "permissions": "3072",
                "position": 0,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
        ] + [
            {
                "id": str(r),
                "name": f"role{i}",
                "permissions": "0",
                "position": i + 1,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
            for i, r in enumerate(g["roles"])
        ]
        payloads.append(
            {
                "op": 0,
                "t": "GUILD_CREATE",
                "s": len(payloads) + 1,
                "d": {
                    "id": str(g["id"]),
                    "name": f"Server {g['id']}",
                    "owner_id": str(g["members"][0]),
                    "roles": roles,
                    "emojis": [],
                    "stickers": [],
                    "features": [],
                    "large": True,
                    "unavailable": False,
                    "member_count": len(g["members"]),
                    "members": [
                        {
                            "user": user_payload(m, rng),
                            "roles": [],
                            "joined_at": "2024-01-01T00:00:00+00:00",
                            "deaf": False,
                            "mute": False,
                            "flags": 0,
                        }
                        for m in g["members"][:250]  # Discord sends only some members of a large guild
                    ],
                    "channels": [
                        {"id": str(c), "type": 0, "name": f"chan{i}", "position": i, "permission_overwrites": []}
                        for i, c in enumerate(g["channels"])
                    ],
                    "threads": [],
                    "presences": [],
                    "voice_states": [],
                    "stage_instances": [],
                    "guild_scheduled_events": [],
                    "premium_tier": 0,
                    "joined_at": "2024-01-01T00:00:00+00:00",
                },
            }
        )
    return payloads


def messages(world: list[dict], count: int, rng: random.Random, first_seq: int) -> list[dict]:
    guild_weights = [g["activity"] for g in world]
    member_weights = {g["id"]: [1.0 / (k + 1) ** 1.1 for k in range(len(g["members"]))] for g in world}
    payloads = []
    for i in range(count):
        g = rng.choices(world, guild_weights)[0]
        author = rng.choices(g["members"], member_weights[g["id"]])[0]
        content = " ".join(rng.choices(WORDS, k=rng.randrange(4, 45)))
        payloads.append(
            {
                "op": 0,
                "t": "MESSAGE_CREATE",
                "s": first_seq + i,
                "d": {
                    "type": 0,
                    "tts": False,
                    "timestamp": "2026-11-22T06:00:00.000000+00:00",
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
    """One compressed stream, framed the way Discord frames it for discord.py's decompressor."""
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


# -- the three bots -----------------------------------------------------------------


def bot_options() -> dict:
    """Tally's own discord.py options, so a and c differ from b only in the XP work."""
    intents = discord.Intents.none()
    intents.guilds = intents.members = intents.guild_messages = intents.dm_messages = intents.message_content = True
    return {
        "command_prefix": "!",
        "intents": intents,
        "allowed_mentions": discord.AllowedMentions.none(),
        "chunk_guilds_at_startup": False,
        "max_messages": None,
        "guild_ready_timeout": 0.01,
    }


async def bare_bot(folder: Path) -> tuple[commands.Bot, object]:
    bot = commands.Bot(**bot_options())
    return bot, None


async def tally_bot(folder: Path, database_url: str | None = None) -> tuple[commands.Bot, object]:
    """Tally on a new SQLite file in ``folder``, or on the PostgreSQL database at ``database_url``."""
    settings = Settings(
        token="bench" * 10,
        database_path=folder / "tally.db",
        default_prefix="!",
        xp_per_message=5,
        xp_cooldown_seconds=60,
        xp_flush_seconds=1.0,
        level_curve="linear",
        log_level="WARNING",
        database_url=database_url,
    )
    db = await Database.open(settings.database_url or settings.database_path)
    if database_url is not None:  # every round starts from empty tables, as b does from a new file
        async with db.transaction() as conn:
            await conn.execute(EMPTY_TABLES)
    bot = Tally(settings, db)
    return bot, db


# Empties every table but the schema version (whatever tables this Tally's schema has).
EMPTY_TABLES = (
    "DO $$ BEGIN EXECUTE (SELECT 'TRUNCATE ' || string_agg(format('%I', tablename), ', ') || ' RESTART IDENTITY' "
    "FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'tally_version'); END $$"
)


async def tutorial_bot(folder: Path) -> tuple[commands.Bot, object]:
    """The seed chapter's handler, as written there (with its 10 XP per message)."""
    path = folder / "database.db"
    async with aiosqlite.connect(path) as db:
        await db.execute(
            "CREATE TABLE IF NOT EXISTS users (user_id INTEGER PRIMARY KEY, xp INTEGER DEFAULT 0, level INTEGER DEFAULT 1)"
        )
        await db.commit()
    bot = commands.Bot(**bot_options())

    async def add_user(user_id: int) -> None:
        async with aiosqlite.connect(path) as db:
            await db.execute("INSERT OR IGNORE INTO users (user_id) VALUES (?)", (user_id,))
            await db.commit()

    @bot.event
    async def on_message(message: discord.Message) -> None:
        if message.author.bot:
            return
        await add_user(message.author.id)
        async with aiosqlite.connect(path) as db:
            await db.execute("UPDATE users SET xp = xp + ? WHERE user_id = ?", (10, message.author.id))
            await db.commit()
        await bot.process_commands(message)

    return bot, None


VARIANTS = {"a": ("bare discord.py", bare_bot), "b": ("Tally", tally_bot), "c": ("tutorial", tutorial_bot)}
ROUND_ORDER = "abdc"  # d (Tally on PostgreSQL) is added by main() when a server answers


# -- a PostgreSQL database of the run's own --------------------------------------------


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` with its database name replaced by ``name``."""
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


async def create_database(admin_url: str, name: str) -> str | None:
    """Create the database ``name`` on the server; its URL, or None (and one line) when no server answers."""
    try:
        admin = await asyncpg.connect(admin_url, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        print(f"(d) skipped: no PostgreSQL server answers at {describe(admin_url)} ({type(exc).__name__})")
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


# -- feeding and timing ---------------------------------------------------------------


def event_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("discord.py:") and not t.done()]


async def drain() -> None:
    """Wait until every event handler discord.py scheduled has finished."""
    while tasks := event_tasks():
        await asyncio.wait(tasks)


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


def as_launched(bot: commands.Bot) -> int | None:
    """For a sharded bot, what ``launch_shards`` sets once Discord recommends one shard; the shard ID."""
    if not isinstance(bot, discord.AutoShardedClient):
        return None
    bot.shard_count = bot._connection.shard_count = 1
    bot._connection.shard_ids = [0]
    return 0


async def run_variant(make, setup: list[bytes], frames: list[bytes]) -> tuple[float, float, int | None]:
    """Messages/s, worst stall and (for Tally) the flushes that wrote something, for one variant."""
    with tempfile.TemporaryDirectory() as folder:
        bot, db = await make(Path(folder))
        tally = isinstance(bot, Tally)
        try:
            await bot._async_setup_hook()
            await bot.setup_hook()
            ws = DiscordWebSocket(None, loop=asyncio.get_running_loop())
            ws.token = "bench"
            ws._connection = bot._connection
            ws._discord_parsers = bot._connection.parsers
            ws._dispatch = bot.dispatch
            ws.call_hooks = bot._connection.call_hooks
            ws.shard_id = as_launched(bot)
            for frame in setup:  # READY and every GUILD_CREATE, untimed
                await ws.received_message(frame)
            await asyncio.wait_for(bot.wait_until_ready(), 30)  # after guild_ready_timeout: Tally's is 2 s
            await drain()

            monitor = StallMonitor()
            monitor.start()
            start = time.perf_counter()
            for i, frame in enumerate(frames):
                await ws.received_message(frame)
                await asyncio.sleep(0)  # a socket read yields to the loop between frames
                if i % 256 == 255:
                    await drain()
            await drain()
            if tally:
                await bot.xp.flush()  # timed until everything is in the database
            elapsed = time.perf_counter() - start
            await monitor.stop()
            if tally:
                assert bot.xp.pending_count == 0
        finally:
            if tally:
                await bot.xp.stop()
                await db.close()
            await bot.http.close()
        return len(frames) / elapsed, monitor.worst, bot.xp.flushes if tally else None


def per_round(rates: dict[str, list[float]], top: str, bottom: str) -> float:
    """The median over rounds of top/bottom, each taken within its round (the variants ran back to back there)."""
    return statistics.median(t / b for t, b in zip(rates[top], rates[bottom], strict=True))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=40_000, help="messages per round for a, b and d")
    parser.add_argument("--tutorial-messages", type=int, default=1_500, help="messages per round for c (it is slow)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 5,000 (c: 300) messages")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.messages, args.tutorial_messages = 2, 5_000, 300
    logging.basicConfig(level=logging.ERROR)

    rng = random.Random(20261122)
    world = build_world(rng)
    setup_payloads = ready_and_guilds(world, rng)
    message_payloads = messages(world, args.messages, rng, len(setup_payloads) + 1)
    all_frames = compress(setup_payloads + message_payloads)
    setup, frames = all_frames[: len(setup_payloads)], all_frames[len(setup_payloads) :]
    sizes = [len(json.dumps(p)) for p in message_payloads[:2000]]
    # The payloads are not needed any more and the frames never change: out of the garbage
    # collector's way, so a collection's pause during a round is the bot's, not the bench's.
    del setup_payloads, message_payloads
    gc.collect()
    gc.freeze()
    print(
        f"Python {platform.python_version()}, discord.py {discord.__version__}, {platform.machine()}, {platform.system()}"
    )
    print(
        f"{args.messages:,} messages a round ({args.tutorial_messages:,} for c), {GUILDS} guilds, "
        f"{sum(len(g['members']) for g in world):,} members; MESSAGE_CREATE {statistics.mean(sizes):.0f} bytes of JSON "
        f"on average, {statistics.mean(len(f) for f in frames[:2000]):.0f} bytes compressed "
        f"({utils._ActiveDecompressionContext.COMPRESSION_TYPE})"
    )

    variants = dict(VARIANTS)
    name = f"tally_bench_ingest_{os.getpid()}"
    url = await create_database(POSTGRES_ADMIN_URL, name)
    if url is not None:
        variants["d"] = ("Tally on PostgreSQL", functools.partial(tally_bot, database_url=url))
        print(f"(d) uses the database {name} on {describe(POSTGRES_ADMIN_URL).rsplit('/', 1)[0]}, dropped at the end")
    order = [key for key in ROUND_ORDER if key in variants]
    rates: dict[str, list[float]] = {key: [] for key in order}
    stalls: dict[str, list[float]] = {key: [] for key in order}
    try:
        for round_ in range(1, args.rounds + 1):
            line = []
            for key in order:
                chosen = frames if key != "c" else frames[: args.tutorial_messages]
                rate, stall, flushes = await run_variant(variants[key][1], setup, chosen)
                rates[key].append(rate)
                stalls[key].append(stall)
                written = "" if flushes is None else f", flushes: {flushes}"
                line.append(f"{key} {rate:,.0f}/s (stall {stall * 1000:.0f} ms{written})")
            print(f"round {round_}: " + ", ".join(line), flush=True)
    finally:
        if url is not None:
            await drop_database(POSTGRES_ADMIN_URL, name)

    median = {key: statistics.median(values) for key, values in rates.items()}
    # Ratios are taken within each round (the variants ran back to back there),
    # then the median over rounds: the machine's load drifts between rounds.
    print()
    for key in sorted(order):
        print(f"({key}) {variants[key][0]:<20} {median[key]:>10,.0f} messages/s (median of {args.rounds})")
    print(f"b/a = {per_round(rates, 'b', 'a'):.2f}   (target >= 0.85; median of the per-round ratios)")
    if "d" in rates:
        print(
            f"d/a = {per_round(rates, 'd', 'a'):.2f}   (target >= 0.85, as for SQLite; median of the per-round ratios)"
        )
        print(f"d/b = {per_round(rates, 'd', 'b'):.2f}   (PostgreSQL against SQLite; median of the per-round ratios)")
    print(f"b/c = {per_round(rates, 'b', 'c'):.0f}   (target >= 40; median of the per-round ratios)")
    print(f"worst event-loop stall during b: {max(stalls['b']) * 1000:.1f} ms   (target <= 20 ms)")
    if "d" in stalls:
        print(f"worst event-loop stall during d: {max(stalls['d']) * 1000:.1f} ms   (target <= 20 ms)")
    print(f"  (for comparison, during a: {max(stalls['a']) * 1000:.1f} ms, during c: {max(stalls['c']) * 1000:.1f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
