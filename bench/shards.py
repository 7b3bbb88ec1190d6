"""Does Tally scale out: what do two shard processes on one PostgreSQL database cost?

Runs Tally as shard processes against one PostgreSQL database, the way a
sharded bot runs (SHARD_COUNT=2, SHARD_IDS=<its shard>, DATABASE_URL, the
settings read by ``config.load_settings``, the database opened as ``bot.run``
opens it), each a subprocess of this script running the real ``Tally`` bot,
fed pre-built compressed gateway frames through discord.py's real receive
path (``DiscordWebSocket.received_message``) as bench/ingest.py does: a READY
for its shard and a GUILD_CREATE for each of its guilds, then MESSAGE_CREATE
frames of its own guilds only (a guild is on shard ``(guild_id >> 22) % 2``).

The world: 50 guilds in pairs of the same size and activity, one of each
pair on each shard (2,000 to 8,000 members, a few busy guilds and a long
quiet tail, skewed activity per member), so both shards get the same kind
of traffic. XP_COOLDOWN_SECONDS=0, so every message earns XP, and the
write-behind flusher writes to PostgreSQL every second (XP_FLUSH_SECONDS=1)
while the frames go through; a run is timed until every gain is written.
A level-up (every 20th message of a member, on the linear curve) posts its
announcement to a stand-in for Discord's REST API that answers at once:
discord.py's own work on the post is on the bot's time, the network is not.

Each round runs three layouts, back to back, in a rotating order, each on
emptied tables:

  shard 0 alone   one process, N messages
  shard 1 alone   one process, N messages
  2 processes     shard 0 and shard 1 at once, N messages each (the same
                  messages as alone: each shard's stream is fixed)

and prints, per layout, and as medians of the per-round figures:

  (a) aggregate messages/s (all messages over the wall time from "go" until
      the last process has written its last gain);
  (b) each bot process's CPU time (user + system, all its threads, from
      ``time.process_time`` in the process) per 10,000 messages, and for 2
      processes the ratio to the same shard alone (target: within 10 %);
  (c) PostgreSQL's CPU time per 10,000 messages: the time on the CPU (from
      /proc/<pid>/schedstat, else utime + stime from /proc/<pid>/stat) of the
      server's backend processes serving the bench database (the pids
      pg_stat_activity lists for it, before and after the run; a backend
      started during the run counts from zero; each process has read its
      guilds' boards before, as a bot that has been running has, so its
      pool's connections are open already). The server's
      shared background processes (WAL writer, checkpointer, background
      writer) are not in it; nor is the fsync wait of a commit, which is not
      CPU time. As a share of a bot process's CPU per message (target < 5 %).

The PostgreSQL server is the one at ``TALLY_BENCH_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres, used only to create and drop
the database ``tally_bench_shards_<pid>``). Without a server answering there
the script says so and exits; (c) needs the server on this machine.

    .venv/bin/python bench/shards.py              # 5 rounds of 60,000 messages per process
    .venv/bin/python bench/shards.py --quick      # 2 rounds of 5,000

(``--driver`` runs one shard process; this script starts those itself.)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import discord  # noqa: E402
from common import (  # noqa: E402
    EMPTY_TABLES,
    POSTGRES_ADMIN_URL,
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
)
from discord import utils  # noqa: E402

from bot import Tally  # noqa: E402
from config import load_settings  # noqa: E402
from db import Database  # noqa: E402

SHARDS = 2
PAIRS = 25  # guilds per shard
SEED = 20261122
CPU_TARGET = 0.10  # each of 2 processes within 10 % of one process's CPU per message
DATABASE_SHARE_TARGET = 0.05  # the database's CPU per message under 5 % of a bot process's


# -- the world and its frames (built again, the same, in every shard process) ---------------


def build_world() -> list[dict]:
    """Guilds in pairs of one size and activity, one of each pair on each shard."""
    rng = random.Random(SEED)
    guilds = []
    for pair in range(PAIRS):
        members = rng.randrange(2000, 8000)
        channels = rng.randrange(3, 12)
        for shard in range(SHARDS):
            timestamp = 300_000_000_000 + SHARDS * pair + shard  # the bits above 22 decide the shard
            guild_id = (timestamp << 22) | rng.getrandbits(22)
            assert (guild_id >> 22) % SHARDS == shard
            # a few busy servers, a long quiet tail
            guild = random_guild(rng, guild_id, channels, members, 1.0 / (pair + 1) ** 0.8)
            guilds.append({**guild, "shard": shard})
    return guilds


# -- one shard process (--driver) ---------------------------------------------------------


def tell(**fields) -> None:
    """One line of JSON to the parent."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class RestStandIn:
    """Stands in for Discord's REST API (it replaces ``bot.http.request``): level-up posts answered at once.

    discord.py's work on a post (the JSON body, the Message built from the
    answer) stays on the bot's time; the network round trip is not there.
    """

    def __init__(self) -> None:
        self.posts = 0
        self._ids = itertools.count(700000000000000000)

    async def request(self, route: discord.http.Route, **kwargs) -> dict:
        body = kwargs.get("json") or {}
        utils._to_json(body)  # what HTTPClient.request does with it
        if not (route.method == "POST" and route.path == "/channels/{channel_id}/messages"):
            raise AssertionError(f"the bench does not answer {route.method} {route.path}")
        self.posts += 1
        return message_answer(next(self._ids), route.channel_id, bot_user(), body.get("content") or "", [])


async def drive(shard: int, count: int, database_url: str) -> None:
    """Build this shard's frames and bot, say ready, run on "go", report, close on "quit"."""
    world = [g for g in build_world() if g["shard"] == shard]
    rng = random.Random(SEED * 10 + shard)  # each shard its own messages, the same in every run
    setup_payloads = ready_and_guilds(world, rng, shard=(shard, SHARDS), session_id=f"bench-{shard}")
    all_frames = compress(setup_payloads + messages(world, count, rng, len(setup_payloads) + 1))
    setup, frames = all_frames[: len(setup_payloads)], all_frames[len(setup_payloads) :]

    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(
            {
                "DISCORD_TOKEN": "bench" * 10,
                "DATABASE_URL": database_url,
                "DATABASE_PATH": str(Path(folder) / "tally.db"),  # where a shutdown would keep unsaved XP
                "SHARD_COUNT": str(SHARDS),
                "SHARD_IDS": str(shard),
                "XP_COOLDOWN_SECONDS": "0",  # every message earns XP: the flushes carry real work
                "XP_FLUSH_SECONDS": "1",
                "LOG_LEVEL": "WARNING",
            }
        )
        db = await Database.open(  # as bot.run opens it: a running bot, claiming its shard
            settings.database_url,
            exclusive=True,
            shards=(settings.shard_count, settings.shard_ids),
            unsaved_folder=folder,
        )
        bot = Tally(settings, db)
        rest = RestStandIn()
        bot.http.request = rest.request  # level-ups are announced: every 20th award on the linear curve
        try:
            await bot._async_setup_hook()
            await bot.setup_hook()  # starts the flusher
            # what launch_shards sets before it connects this process's shards
            bot._connection.shard_count = settings.shard_count
            bot._connection.shard_ids = list(settings.shard_ids)
            ws = gateway(bot, shard)
            for frame in setup:  # READY and every GUILD_CREATE, untimed
                await ws.received_message(frame)
            await asyncio.wait_for(bot.wait_until_ready(), 30)
            await drain()
            assert {guild.shard_id for guild in bot.guilds} == {shard}
            # As in a bot that has been running: every guild's board in memory, the pool's connections open.
            await asyncio.gather(*(bot.xp.board(guild.id) for guild in bot.guilds))

            stdin = asyncio.StreamReader()
            loop = asyncio.get_running_loop()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
            tell(ready=True)
            if (await stdin.readline()).strip() != b"go":
                return

            cpu, start = time.process_time(), time.perf_counter()
            await feed(ws, frames)
            await bot.xp.flush()  # timed until everything is in the database
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            assert bot.xp.pending_count == 0
            tell(shard=shard, messages=len(frames), cpu=cpu, elapsed=elapsed, flushes=bot.xp.flushes, posts=rest.posts)
            await stdin.readline()  # "quit": the parent has read the server's CPU, the pool may close
        finally:
            await bot.xp.stop()
            await db.close()
            await bot.http.close()


# -- the parent: rounds, layouts, the server's CPU --------------------------------------------


def proc_cpu(pid: int) -> float | None:
    """CPU seconds so far of a PostgreSQL backend on this machine (None if it is gone or not here).

    /proc/<pid>/schedstat's time on the CPU (nanoseconds); where the kernel has
    no schedstat, utime + stime from /proc/<pid>/stat (clock ticks, 10 ms).
    """
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as file:
            if file.read().strip() != "postgres":
                return None  # not the server's process: the server runs elsewhere (another machine, a container)
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as file:
            return int(file.read().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


async def server_cpu(conn: asyncpg.Connection, name: str) -> dict[int, float]:
    """CPU seconds so far of each backend serving the database ``name`` (but this connection's)."""
    pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)
    found = {row[0]: proc_cpu(row[0]) for row in pids}
    return {pid: cpu for pid, cpu in found.items() if cpu is not None}


async def run_layout(shards: list[int], args: argparse.Namespace, url: str, conn: asyncpg.Connection) -> dict:
    """Run these shard processes at once on emptied tables; their reports, the wall time and the server's CPU."""
    await conn.execute(EMPTY_TABLES)
    name = urllib.parse.urlsplit(url).path.strip("/")
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--driver",
            str(shard),
            "--messages",
            str(args.messages),
            "--database-url",
            url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for shard in shards
    ]
    try:
        for proc in procs:
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError(f"a shard process ended before it was ready (exit code {await proc.wait()})")
        before = await server_cpu(conn, name)
        start = time.perf_counter()
        for proc in procs:
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        reports = []
        for proc in procs:
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError(f"a shard process failed during the run (exit code {await proc.wait()})")
            reports.append(json.loads(line))
        wall = time.perf_counter() - start
        after = await server_cpu(conn, name)
        for proc in procs:
            proc.stdin.write(b"quit\n")
            await proc.stdin.drain()
        for proc in procs:
            if await proc.wait() != 0:
                raise RuntimeError(f"a shard process failed while closing (exit code {proc.returncode})")
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    lost = before.keys() - after.keys()  # a backend that ended during the run took its CPU time along
    database = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items()) if after else None
    return {"reports": reports, "wall": wall, "database": database, "backends": len(after), "lost": len(lost)}


def per_10k(seconds: float, count: int) -> float:
    return seconds / count * 10_000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=60_000, help="messages per process per run")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 5,000 messages per process")
    parser.add_argument("--driver", type=int, metavar="SHARD", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver is not None:
        logging.basicConfig(level=logging.ERROR)
        await drive(args.driver, args.messages, args.database_url)
        return
    if args.quick:
        args.rounds, args.messages = 2, 5_000

    name = f"tally_bench_shards_{os.getpid()}"
    url = await create_database(
        POSTGRES_ADMIN_URL, name, "no PostgreSQL server answers at {server} ({error}); nothing to run"
    )
    if url is None:
        return
    world = build_world()
    layouts = {"shard 0 alone": [0], "shard 1 alone": [1], "2 processes": [0, 1]}
    runs: dict[str, list[dict]] = {layout: [] for layout in layouts}
    try:
        await (await Database.open(url)).close()  # the schema, created once before the shards start
        conn = await asyncpg.connect(url)
        try:
            print(
                f"Python {platform.python_version()}, discord.py {discord.__version__}, {platform.machine()}, "
                f"{platform.system()}, {os.cpu_count()} CPUs; PostgreSQL {conn.get_server_version().major}"
            )
            print(
                f"{args.messages:,} messages per process per run; {len(world)} guilds, {PAIRS} per shard, "
                f"{sum(len(g['members']) for g in world):,} members; XP cooldown 0, a flush every second; "
                f"the database {name}, dropped at the end"
            )
            if proc_cpu(await conn.fetchval("SELECT pg_backend_pid()")) is None:
                print("(c) cannot be measured: the server's processes are not visible in /proc here")
            for round_ in range(1, args.rounds + 1):
                order = list(layouts)[round_ % 3 :] + list(layouts)[: round_ % 3]  # a rotating order
                for layout in order:
                    run = await run_layout(layouts[layout], args, url, conn)
                    runs[layout].append(run)
                    print(f"round {round_}, {layout:<13} {describe_run(run)}", flush=True)
        finally:
            await conn.close()
    finally:
        await drop_database(POSTGRES_ADMIN_URL, name)
    summary(runs, args.rounds)


def describe_run(run: dict) -> str:
    reports = run["reports"]
    count = sum(r["messages"] for r in reports)
    bots = " + ".join(f"{per_10k(r['cpu'], r['messages']):.2f}" for r in reports)
    bot_cpu = sum(r["cpu"] for r in reports)
    lost = f"; {run['lost']} backend(s) ended during the run, their CPU missing" if run["lost"] else ""
    database = (
        "PostgreSQL not measured"
        if run["database"] is None
        else f"PostgreSQL {per_10k(run['database'], count):.3f} s per 10,000 ({run['database'] / bot_cpu:.1%} of "
        f"the bots', {run['backends']} backends)"
    )
    flushes = " + ".join(str(r["flushes"]) for r in reports)
    posts = " + ".join(str(r["posts"]) for r in reports)
    return (
        f"{count / run['wall']:>8,.0f} messages/s; bot CPU {bots} s per 10,000 messages; {database}; "
        f"flushes {flushes}, level-up posts {posts}{lost}"
    )


def summary(runs: dict[str, list[dict]], rounds: int) -> None:
    """Medians over rounds of the per-round figures and ratios."""
    med = statistics.median

    def cpu_of(run: dict, shard: int) -> float:
        report = next(r for r in run["reports"] if r["shard"] == shard)
        return per_10k(report["cpu"], report["messages"])

    def rate(run: dict) -> float:
        return sum(r["messages"] for r in run["reports"]) / run["wall"]

    def database_share(run: dict) -> float:
        return run["database"] / sum(r["cpu"] for r in run["reports"])

    def database_per_10k(run: dict) -> float:
        return per_10k(run["database"], sum(r["messages"] for r in run["reports"]))

    alone = [runs["shard 0 alone"], runs["shard 1 alone"]]
    together = runs["2 processes"]
    print(f"\nMedians over {rounds} rounds (ratios taken within each round)")
    one = [rate(run) for pair in zip(*alone, strict=True) for run in pair]
    print("(a) aggregate messages/s")
    print(f"    1 process     {med(one):>8,.0f}   (both shards' runs alone)")
    print(
        f"    2 processes   {med(rate(run) for run in together):>8,.0f}   "
        f"(x{med(rate(t) / ((rate(a) + rate(b)) / 2) for t, a, b in zip(together, *alone, strict=True)):.2f} of 1 process)"
    )
    print("(b) bot CPU seconds per 10,000 messages, each process (user + system, all threads)")
    medians = []  # per shard: the median over rounds of CPU per message beside the other / alone
    for shard in range(SHARDS):
        ratios = [cpu_of(t, shard) / cpu_of(a, shard) for t, a in zip(together, alone[shard], strict=True)]
        medians.append(med(ratios))
        print(
            f"    shard {shard}: alone {med(cpu_of(run, shard) for run in alone[shard]):.3f}, "
            f"beside the other {med(cpu_of(run, shard) for run in together):.3f}   "
            f"(x{medians[-1]:.2f}; rounds from x{min(ratios):.2f} to x{max(ratios):.2f})"
        )
    if all(abs(ratio - 1) <= CPU_TARGET for ratio in medians):
        verdict = "met"
    elif max(medians) > 1 + CPU_TARGET:
        verdict = "NOT met: more CPU per message beside another process"
    else:
        verdict = "outside 10 %, but lower beside another process: the machine's noise, not a cost of sharding"
    print(f"    target: with 2 processes each within {CPU_TARGET:.0%} of one process's: {verdict}")
    if any(run["database"] is None for run in together):
        return
    print("(c) PostgreSQL CPU seconds per 10,000 messages (the bench database's backends, from /proc)")
    worst = 0.0
    for label, chosen in (
        ("1 process", [run for pair in zip(*alone, strict=True) for run in pair]),
        ("2 processes", together),
    ):
        share = med(database_share(run) for run in chosen)
        worst = max(worst, share)
        print(
            f"    {label:<13} {med(database_per_10k(run) for run in chosen):.3f}   "
            f"({share:.1%} of a bot process's CPU per message; worst run {max(map(database_share, chosen)):.1%})"
        )
    print(
        f"    target: under {DATABASE_SHARE_TARGET:.0%} of a bot process's: {'met' if worst < DATABASE_SHARE_TARGET else 'NOT met'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
