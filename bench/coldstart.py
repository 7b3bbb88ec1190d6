"""How long from ``python bot.py`` to the first ``!level`` answered in a server of 1,000,000 members?

Fills a database with one guild of ``--members`` members (skewed XP, or with
``--distinct-xp`` every member's different), on SQLite and, when a server
answers, on PostgreSQL, then runs the real bot process (``tests/launcher.py``,
as the end-to-end tests do) against the tests' fake Discord, in several
rounds, the backends alternating. As soon as the bot's session is ready, a
member of that guild says ``!level``; the guild's board starts being read on
that first message, and ``!level`` is answered from the database meanwhile.
Then the member asks for ``!leaderboard``, which needs the board in memory.
It prints, per backend, the median over rounds of:

  * from process start to READY (Python, imports, the database opened, login);
  * from process start to the ``!level`` answer: the cold start (target 1 s);
  * from process start to the ``!leaderboard`` answer: the board in memory;
  * and (the worst over rounds) the event-loop stall from the ``!level`` to
    that leaderboard, from a probe in the bot's process that wakes every
    millisecond (target 20 ms), beside the same probe's worst in this bench's
    own, mostly idle, process meanwhile: what the machine itself adds.

The PostgreSQL server is the one at ``TALLY_BENCH_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres; the database
``tally_bench_coldstart_<pid>`` is created for the run and dropped at its end).

    .venv/bin/python bench/coldstart.py                  # 1,000,000 members, 5 rounds
    .venv/bin/python bench/coldstart.py --members 100000 --rounds 3
    .venv/bin/python bench/coldstart.py --distinct-xp    # every member a different XP
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from common import POSTGRES_ADMIN_URL, StallMonitor, create_database, drop_database, skewed_xp  # noqa: E402

from db import Database  # noqa: E402
from tests.fake_discord import FakeDiscord  # noqa: E402

LAUNCHER = ROOT / "tests" / "launcher.py"
COLD_START_TARGET = 1.0  # seconds
STALL_TARGET = 0.020


def member_rows(guild_id: int, members: int, extra: list[int], distinct: bool) -> list[tuple]:
    """The guild's members: XP skewed as chatting earns it (a few hundred distinct values), or
    ``distinct``, every member's different (the most work a board's build can be given)."""
    rng = random.Random(members)
    user_ids = rng.sample(range(10**17, 10**18), members) + extra
    xps = rng.sample(range(1, 10 * len(user_ids)), len(user_ids)) if distinct else [skewed_xp(rng) for _ in user_ids]
    return [(guild_id, u, xp, f"member{u % 100000}", 1_700_000_000) for u, xp in zip(user_ids, xps, strict=True)]


async def fill_sqlite(path: Path, rows: list[tuple]) -> None:
    db = await Database.open(path)  # the schema, as Tally makes it
    await db.close()
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO members (guild_id, user_id, xp, name, first_seen) VALUES (?, ?, ?, ?, ?)", rows)


async def fill_postgres(url: str, rows: list[tuple]) -> None:
    db = await Database.open(url)
    await db.close()
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "members", records=rows, columns=["guild_id", "user_id", "xp", "name", "first_seen"]
        )
        await conn.execute("VACUUM ANALYZE members")
    finally:
        await conn.close()


class Start(NamedTuple):
    ready: float  # seconds from process start to READY
    answered: float  # to the first !level answered
    loaded: float  # to the first !leaderboard answered: the board is in memory
    stall: float  # the worst event-loop stall from the !level to that leaderboard
    noise: float  # the worst stall of this bench's own, mostly idle, event loop meanwhile: the machine's


async def one_start(fake: FakeDiscord, env: dict[str, str], guild, channel, member) -> Start:
    """One start of the bot: a !level as soon as it is ready, then a !leaderboard."""
    fake.ready_session = None
    start = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(LAUNCHER), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    lines: list[str] = []

    async def read() -> None:
        async for line in process.stderr:
            lines.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read())
    try:
        await fake.wait_until_ready(timeout=60)
        ready = time.perf_counter() - start
        count = len(fake.posts)
        noise = StallMonitor()  # this bench's own, mostly idle, loop: what the machine adds
        noise.start()
        asked = time.perf_counter()
        await fake.say(channel, member, "!level")
        post = await fake.wait_for_post(after=count, timeout=120, channel_id=channel.id)
        answered = time.perf_counter()
        assert "Total XP" in str(post.embeds), post
        await fake.say(channel, member, "!leaderboard")  # answered from the board: once it is read
        post = await fake.wait_for_post(after=count + 1, timeout=120, channel_id=channel.id)
        loaded = time.perf_counter()
        await noise.stop()
        assert "Leaderboard" in str(post.embeds), post
    finally:
        process.terminate()
        await process.wait()
        await reader
    # stalls over 2 ms that ended between the !level and the !leaderboard's answer, on the bot's clock
    # (perf_counter is the same monotonic clock in both processes on Linux)
    stalls = [line.split() for line in lines if line.startswith("stall probe:")]
    worst = max([float(parts[2]) for parts in stalls if asked <= float(parts[4]) <= loaded] or [0.0])
    if os.environ.get("TALLY_BENCH_SHOW_STALLS"):
        print(f"the command at {asked:.6f}, the board in memory at {loaded:.6f}")
        print("".join(line for line in lines if line.startswith(("stall probe:", "gc pass:"))), end="")
    return Start(ready, answered - start, loaded - start, worst, noise.worst)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--distinct-xp", action="store_true", help="every member a different XP")
    args = parser.parse_args()

    fake = FakeDiscord()
    guild = fake.add_guild("A very big server")
    channel = fake.add_channel(guild, "general")
    asker = fake.add_member(guild, "asker")
    await fake.start()
    rows = member_rows(guild.id, args.members, [asker.id], args.distinct_xp)
    name = f"tally_bench_coldstart_{os.getpid()}"
    url = await create_database(
        POSTGRES_ADMIN_URL, name, "PostgreSQL left out: no server answers at {server} ({error})"
    )
    results: dict[str, list[Start]] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            await fill_sqlite(Path(folder) / "tally.db", rows)
            backends = {"SQLite": {"DATABASE_PATH": str(Path(folder) / "tally.db")}}
            if url is not None:
                await fill_postgres(url, rows)
                backends["PostgreSQL"] = {"DATABASE_URL": url}
            xp = "every one a different XP" if args.distinct_xp else "skewed XP"
            print(f"{args.members:,} members in one guild ({xp}), filled in {time.perf_counter() - started:.0f} s")
            base = {
                "PATH": os.environ.get("PATH", ""),
                "PYTHONPATH": str(ROOT),
                "TALLY_FAKE_DISCORD": fake.url,
                "DISCORD_TOKEN": fake.token,
                "LOG_LEVEL": "WARNING",
                "TALLY_STALL_PROBE": "1",
            }
            labels = list(backends)
            for round_ in range(args.rounds):
                line = []
                for label in labels if round_ % 2 == 0 else reversed(labels):
                    figures = await one_start(fake, {**base, **backends[label]}, guild, channel, asker)
                    results.setdefault(label, []).append(figures)
                    line.append(
                        f"{label} ready {figures.ready:.2f} s, answered {figures.answered:.2f} s, "
                        f"board {figures.loaded:.2f} s, stall {figures.stall * 1000:.1f} ms "
                        f"(the bench's own {figures.noise * 1000:.1f} ms)"
                    )
                print(f"round {round_ + 1}: " + "; ".join(line), flush=True)
    finally:
        await fake.stop()
        if url is not None:
            await drop_database(POSTGRES_ADMIN_URL, name)
    print()
    for label, figures in results.items():
        ready, answered, loaded, stalls, noise = zip(*figures, strict=True)
        verdict = "met" if statistics.median(answered) <= COLD_START_TARGET else "NOT met"
        stalled = "met" if max(stalls) <= STALL_TARGET else "NOT met"
        print(
            f"{label:<11} READY {statistics.median(ready):.2f} s; first !level answered {statistics.median(answered):.2f} s "
            f"(range {min(answered):.2f}-{max(answered):.2f} s; target <= {COLD_START_TARGET:.0f} s: {verdict}); "
            f"board in memory {statistics.median(loaded):.2f} s; worst stall while the board loads "
            f"{max(stalls) * 1000:.1f} ms (target <= {STALL_TARGET * 1000:.0f} ms: {stalled}); the bench's own "
            f"loop meanwhile, the machine's noise: worst {max(noise) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
