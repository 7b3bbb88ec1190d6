"""How much does Tally's XP path cost next to discord.py itself?

Builds realistic compressed MESSAGE_CREATE frames (about 1 KB each, 50 guilds,
thousands of members, skewed activity) and feeds them through discord.py's
real gateway receive path (``DiscordWebSocket.received_message``: transport
decompression, JSON, parsing, dispatch) in one process, for five variants,
alternated over several rounds (in each round: a, b, e, d, c; the PostgreSQL
server goes on writing for a moment after d, on the same cores, so the
variants compared with each other run before it):

  a  a bare ``commands.Bot`` configured like Tally, with no XP listener: the ceiling
  b  Tally: the real ``Tally`` bot with its real listener and a real database
     file, timed until every pending XP gain is flushed
  d  the same Tally on PostgreSQL: its Database opened on a database of its
     own on the server (created for the run, emptied before each round,
     dropped at the end), flushing every second over the network, timed
     until every pending XP gain is written
  e  Tally as in b, every server with per-server rules configured: XP drawn
     from 3-7, 20 no-XP channels, 2 no-XP roles, multipliers on 2 channels
     and 4 roles (members hold 2 of their server's 8 roles), and 20 reward
     levels: what a busy, fully set-up server asks of the message path
  c  the seed chapter's tutorial handler: connect, INSERT OR IGNORE, UPDATE,
     commit for every message

It prints messages/s for each (median over rounds), the ratios b/a, d/a,
d/b, e/a, e/b and b/c, the worst event-loop stall seen during b and d, and how many
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiosqlite  # noqa: E402
import discord  # noqa: E402
from common import (  # noqa: E402
    EMPTY_TABLES,
    POSTGRES_ADMIN_URL,
    as_launched,
    compress,
    create_database,
    drain,
    drop_database,
    feed,
    gateway,
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


def server_rules(world: list[dict], rng: random.Random) -> dict[int, dict[str, str]]:
    """Variant e's settings for each server, as ``!settings``, ``!noxp``, ``!multipliers`` and ``!rewards`` store them.

    The no-XP channels are channels nobody writes in, and the no-XP roles
    roles nobody holds: every message still earns, so e does b's work plus
    the rules' lookups.
    """
    rules = {}
    for g in world:
        quiet = [snowflake(rng) for _ in range(20)]
        roles = g["roles"]
        rules[g["id"]] = {
            "xp": "3-7",  # 5 on average, as b; at most 7 x 2 x 2 = 28 XP: no level-up, as in b
            "noxp": ",".join([f"channel:{c}" for c in quiet] + [f"role:{snowflake(rng)}" for _ in range(2)]),
            "multipliers": ",".join(
                [f"channel:{g['channels'][0]}=1.5", f"channel:{g['channels'][1]}=2"]
                + [f"role:{role}={factor}" for role, factor in zip(roles[:4], ("1.2", "1.5", "2", "0.5"), strict=True)]
            ),
            "rewards": ",".join(f"{level * 5}:{snowflake(rng)}" for level in range(1, 21)),
        }
    return rules


async def ruled_tally_bot(folder: Path, rules: dict[int, dict[str, str]]) -> tuple[commands.Bot, object]:
    """Tally on a new SQLite file with every server's rules stored, read at start-up as always."""
    bot, db = await tally_bot(folder)
    for guild_id, settings in rules.items():
        for name, value in settings.items():
            await db.set_setting(guild_id, name, value)
    return bot, db


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
ROUND_ORDER = "abedc"  # d (Tally on PostgreSQL) is added by main() when a server answers; e by main()


# -- feeding and timing ---------------------------------------------------------------


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


async def run_variant(make, setup: list[bytes], frames: list[bytes]) -> tuple[float, float, int | None]:
    """Messages/s, worst stall and (for Tally) the flushes that wrote something, for one variant."""
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
            start = time.perf_counter()
            await feed(ws, frames)
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
    variants["e"] = ("Tally, rules set", functools.partial(ruled_tally_bot, rules=server_rules(world, rng)))
    name = f"tally_bench_ingest_{os.getpid()}"
    url = await create_database(
        POSTGRES_ADMIN_URL, name, "(d) skipped: no PostgreSQL server answers at {server} ({error})"
    )
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
    print(f"e/a = {per_round(rates, 'e', 'a'):.2f}   (target >= 0.85 with every server's rules set)")
    print(f"e/b = {per_round(rates, 'e', 'b'):.2f}   (the rules' cost on the message path)")
    print(f"b/c = {per_round(rates, 'b', 'c'):.0f}   (target >= 40; median of the per-round ratios)")
    print(f"worst event-loop stall during b: {max(stalls['b']) * 1000:.1f} ms   (target <= 20 ms)")
    if "d" in stalls:
        print(f"worst event-loop stall during d: {max(stalls['d']) * 1000:.1f} ms   (target <= 20 ms)")
    print(f"worst event-loop stall during e: {max(stalls['e']) * 1000:.1f} ms   (target <= 20 ms)")
    print(f"  (for comparison, during a: {max(stalls['a']) * 1000:.1f} ms, during c: {max(stalls['c']) * 1000:.1f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
