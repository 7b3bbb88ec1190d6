"""How much does Tally's message path cost next to discord.py itself, on SQLite and on PostgreSQL?

Builds realistic compressed MESSAGE_CREATE frames (about 1 KB each, 50 guilds,
thousands of members, skewed activity) and feeds them through discord.py's
real gateway receive path (``DiscordWebSocket.received_message``: transport
decompression, JSON, parsing, dispatch) in one process, to:

  a  a bare ``commands.Bot`` configured like Tally, with no XP listener: the ceiling
  b  Tally on a new SQLite file: the real ``Tally`` bot, its real handler,
     timed until every pending XP gain is flushed
  d  the same Tally on PostgreSQL: a database of its own on the server
     (created for the run, emptied before each round, dropped at the end),
     flushing every second over the network, timed until every gain is written
  c  the seed chapter's tutorial handler: connect, INSERT OR IGNORE, UPDATE,
     commit for every message

Tally runs as a fully set-up server would ask of it: XP cooldown 0 (every
message earns), and in every server XP drawn from 3-7, 20 no-XP channels and
2 no-XP roles (that nobody uses: every message still earns), multipliers on 2
channels and 4 roles (members hold 2 of their server's 8 roles), and 20
reward levels (roles the server no longer has: Tally says so once and asks
Discord nothing). Members level up and Tally announces it: its REST calls are
answered in process, as Discord would, without a network.

Each round runs the bare bot and Tally on SQLite back to back, then the bare
bot and Tally on PostgreSQL back to back, the order within each pair
alternating from round to round (a b a d, then b a d a), and c last; after d,
a CHECKPOINT on the server writes out what PostgreSQL would otherwise go on
writing during the next variant. The ratios b/a and d/a are taken within
their pair, and the median over rounds is printed with its range. It also
prints messages/s for each (median over rounds), b/c, and the worst
event-loop stall in b and d, from a probe that wakes every millisecond. The
frames are built before the rounds and frozen out of the garbage collector's
way (``gc.freeze``), so a collection's pause is the bot's, not the bench's.

Tally is an ``AutoShardedBot``: it gets the settings ``launch_shards`` would
give it after asking Discord (one shard, shard 0), and READY carries
``"shard": [0, 1]`` as Discord's does for a sharded IDENTIFY.

The PostgreSQL server is the one at ``TALLY_BENCH_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres, used only to create and drop
the database ``tally_bench_ingest_<pid>``); when no server answers there,
variant d is skipped with one line.

    .venv/bin/python bench/ingest.py              # the README's figures
    .venv/bin/python bench/ingest.py --quick      # a fast smoke run
    .venv/bin/python bench/ingest.py --profile    # where Tally's time goes (cProfile, one run of b)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import itertools
import json
import logging
import os
import platform
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiosqlite  # noqa: E402
import discord  # noqa: E402
from common import (  # noqa: E402
    EMPTY_TABLES,
    POSTGRES_ADMIN_URL,
    StallMonitor,
    as_launched,
    bot_user,
    compress,
    create_database,
    drain,
    drop_database,
    feed,
    gateway,
    message_answer,
    messages,
    random_guild,
    ready_and_guilds,
    snowflake,
)
from discord import utils  # noqa: E402
from discord.ext import commands  # noqa: E402

from bot import Tally  # noqa: E402
from config import Settings  # noqa: E402
from db import Database  # noqa: E402
from storage.postgres import describe  # noqa: E402

GUILDS = 50


# -- the world and its frames (built by common.py) ----------------------------------------


def build_world(rng: random.Random) -> list[dict]:
    guilds = []
    for g in range(GUILDS):
        members = rng.randrange(2000, 8000)
        guild_id = 100000000000000000 + g * 1000003
        # a few busy servers, a long quiet tail
        guilds.append(random_guild(rng, guild_id, rng.randrange(3, 12), members, 1.0 / (g + 1) ** 0.8))
    return guilds


# -- the bots -----------------------------------------------------------------


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


class LocalDiscord:
    """Discord's REST answers, in process: a level-up's announcement is posted and answered without a network."""

    def __init__(self) -> None:
        self.posts = 0
        self._ids = itertools.count(1 << 60)

    async def request(self, route: discord.http.Route, *, files=None, form=None, **kwargs) -> dict | None:
        body = kwargs.get("json") or {}
        if route.method == "POST" and route.path == "/channels/{channel_id}/messages":
            self.posts += 1
            content, embeds = body.get("content") or "", body.get("embeds") or []
            return message_answer(next(self._ids), route.channel_id, bot_user(), content, embeds)
        raise AssertionError(f"the benchmark did not expect {route.method} {route.path}")


async def tally_bot(
    folder: Path, rules: dict[int, dict[str, str]], database_url: str | None = None
) -> tuple[commands.Bot, object]:
    """Tally with every server's ``rules`` stored, on a new SQLite file in ``folder`` or the PostgreSQL
    database at ``database_url``, emptied first."""
    settings = Settings(
        token="bench" * 10,
        database_path=folder / "tally.db",
        default_prefix="!",
        xp_per_message=5,
        xp_cooldown_seconds=0,  # every message earns
        xp_flush_seconds=1.0,
        level_curve="linear",
        log_level="WARNING",
        database_url=database_url,
    )
    db = await Database.open(settings.database_url or settings.database_path)
    if database_url is not None:  # every round starts from empty tables, as b does from a new file
        async with db.transaction() as conn:
            await conn.execute(EMPTY_TABLES)
    for guild_id, values in rules.items():
        for name, value in values.items():
            await db.set_setting(guild_id, name, value)
    bot = Tally(settings, db)
    bot.http.request = LocalDiscord().request
    return bot, db


def server_rules(world: list[dict], rng: random.Random) -> dict[int, dict[str, str]]:
    """Tally's settings for each server, as ``!settings``, ``!noxp``, ``!multipliers`` and ``!rewards`` store them.

    The no-XP channels are channels nobody writes in, and the no-XP roles
    roles nobody holds: every message still earns, so e does b's work plus
    the rules' lookups.
    """
    rules = {}
    for g in world:
        quiet = [snowflake(rng) for _ in range(20)]
        roles = g["roles"]
        rules[g["id"]] = {
            "xp": "3-7",
            "noxp": ",".join([f"channel:{c}" for c in quiet] + [f"role:{snowflake(rng)}" for _ in range(2)]),
            "multipliers": ",".join(
                [f"channel:{g['channels'][0]}=1.5", f"channel:{g['channels'][1]}=2"]
                + [f"role:{role}={factor}" for role, factor in zip(roles[:4], ("1.2", "1.5", "2", "0.5"), strict=True)]
            ),
            "rewards": ",".join(f"{level * 5}:{snowflake(rng)}" for level in range(1, 21)),
        }
    return rules


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


# -- feeding and timing ---------------------------------------------------------------


async def run_variant(make, setup: list[bytes], frames: list[bytes], profile: cProfile.Profile | None = None):
    """Messages/s and the worst stall for one variant (``profile``: run under it)."""
    with tempfile.TemporaryDirectory() as folder:
        bot, db = await make(Path(folder))
        tally = isinstance(bot, Tally)
        try:
            await bot._async_setup_hook()
            await bot.setup_hook()
            ws = gateway(bot, as_launched(bot))
            for frame in setup:  # READY and every GUILD_CREATE, untimed
                await ws.received_message(frame)
            await asyncio.wait_for(bot.wait_until_ready(), 30)  # after guild_ready_timeout: Tally's is 2 s
            await drain()
            gc.collect()  # the previous variant's garbage is not this one's pause

            monitor = StallMonitor()
            monitor.start()
            if profile is not None:
                profile.enable()
            start = time.perf_counter()
            await feed(ws, frames)
            if tally:
                await bot.xp.flush()  # timed until everything is in the database
            elapsed = time.perf_counter() - start
            if profile is not None:
                profile.disable()
            await monitor.stop()
            if tally:
                assert bot.xp.pending_count == 0
                if db.dialect == "postgres":  # what the server would go on writing, written now, untimed
                    await db._store.execute("CHECKPOINT")
        finally:
            if tally:
                await bot.xp.stop()
                await db.close()
            await bot.http.close()
        return len(frames) / elapsed, monitor.worst


def pair_ratios(rates: dict[str, list[float]], tally: str, bare: str) -> tuple[float, float, float]:
    """Median, lowest and highest over rounds of Tally's rate over the bare bot's run beside it."""
    ratios = [t / b for t, b in zip(rates[tally], rates[bare], strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def show_profile(profile: cProfile.Profile) -> None:
    """The top of the profile by own time, then Tally's own functions by cumulative time."""
    stats = pstats.Stats(profile)
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(rf"{ROOT}/(?!\.venv)", 15)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds (at least 5; an even number alternates evenly)")
    parser.add_argument("--messages", type=int, default=40_000, help="messages per round for a, b and d")
    parser.add_argument("--tutorial-messages", type=int, default=1_500, help="messages per round for c (it is slow)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 5,000 (c: 300) messages")
    parser.add_argument("--profile", action="store_true", help="profile one run of b instead")
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
    rules = server_rules(world, rng)
    if args.profile:
        profile = cProfile.Profile()
        rate, _ = await run_variant(functools.partial(tally_bot, rules=rules), setup, frames, profile)
        print(f"b: {rate:,.0f} messages/s under the profiler")
        show_profile(profile)
        return

    variants = {
        "a": ("bare discord.py", bare_bot),
        "b": ("Tally on SQLite", functools.partial(tally_bot, rules=rules)),
        "c": ("tutorial", tutorial_bot),
    }
    name = f"tally_bench_ingest_{os.getpid()}"
    url = await create_database(
        POSTGRES_ADMIN_URL, name, "(d) skipped: no PostgreSQL server answers at {server} ({error})"
    )
    if url is not None:
        variants["d"] = ("Tally on PostgreSQL", functools.partial(tally_bot, rules=rules, database_url=url))
        print(f"(d) uses the database {name} on {describe(POSTGRES_ADMIN_URL).rsplit('/', 1)[0]}, dropped at the end")
    pairs = [("b", "a_b")] + ([("d", "a_d")] if url is not None else [])
    rates: dict[str, list[float]] = {key: [] for key in ("b", "a_b", "d", "a_d", "c")}
    stalls: dict[str, list[float]] = {key: [] for key in rates}
    try:
        for round_ in range(1, args.rounds + 1):
            line = []
            for tally, bare in pairs:
                for key in (bare, tally) if round_ % 2 else (tally, bare):
                    rate, stall = await run_variant(variants[key[0]][1], setup, frames)
                    rates[key].append(rate)
                    stalls[key].append(stall)
                    line.append(f"{key[0]} {rate:,.0f}/s (stall {stall * 1000:.0f} ms)")
            rate, stall = await run_variant(variants["c"][1], setup, frames[: args.tutorial_messages])
            rates["c"].append(rate)
            line.append(f"c {rate:,.0f}/s")
            print(f"round {round_}: " + ", ".join(line), flush=True)
    finally:
        if url is not None:
            await drop_database(POSTGRES_ADMIN_URL, name)

    print()
    bare_rates = rates["a_b"] + rates["a_d"]
    print(f"(a) {variants['a'][0]:<20} {statistics.median(bare_rates):>10,.0f} messages/s (median of its runs)")
    for key in ("b", "d", "c"):
        if rates[key]:
            print(f"({key}) {variants[key][0]:<20} {statistics.median(rates[key]):>10,.0f} messages/s (median)")
    for (tally, bare), target in zip(pairs, (0.95, 0.90), strict=False):
        median, low, high = pair_ratios(rates, tally, bare)
        verdict = "met" if median >= target else "NOT met"
        print(
            f"{tally}/a = {median:.2f}, rounds {low:.2f} to {high:.2f}   "
            f"(median of {args.rounds} per-round ratios, target >= {target:.2f}: {verdict})"
        )
    print(f"b/c = {statistics.median(b / c for b, c in zip(rates['b'], rates['c'], strict=True)):.0f}   (target >= 40)")
    for key in ("b", "d"):
        if stalls[key]:
            print(f"worst event-loop stall during {key}: {max(stalls[key]) * 1000:.1f} ms   (target <= 20 ms)")
    print(f"  (for comparison, during a: {max(stalls['a_b'] + stalls['a_d']) * 1000:.1f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
