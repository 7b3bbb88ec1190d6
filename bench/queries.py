"""How fast are ranks, leaderboard pages and flushes in a big guild?

At 10,000, 100,000 and 1,000,000 members in one guild (a real SQLite file,
skewed XP with many ties), prints p50 and p99 of:

  * ``!level``'s data work (rank, XP, level progress) for the members at rank 1,
    in the middle and last;
  * ``!leaderboard``'s data work (the page's rows and the stored names of all
    ten members, as if none were in discord.py's cache) for page 1 and a deep page;
  * one flush of 1,000 and of 10,000 pending members.

It also checks that the ranks and pages agree with SQL's own ORDER BY.

    .venv/bin/python bench/queries.py            # the README's figures
    .venv/bin/python bench/queries.py --quick    # 10,000 and 100,000 only
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db import Database, XpGain  # noqa: E402
from levels import curve  # noqa: E402
from xp import XpTracker  # noqa: E402

GUILD = 123456789012345678
PAGE_SIZE = 10


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1000:8.3f} ms   p99 {p99 * 1000:8.3f} ms"


def timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


async def timed_async(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    return samples


async def populate(db: Database, members: int, rng: random.Random) -> list[int]:
    user_ids = rng.sample(range(10**17, 10**18), members)
    # Skewed XP in steps of 5, as chatting earns it: most members have little, a few a lot.
    rows = [XpGain(GUILD, u, 5 * max(1, int(rng.paretovariate(1.2))), f"member{u % 100000}", 0) for u in user_ids]
    for start in range(0, members, 50_000):
        await db.add_xp(rows[start : start + 50_000])
    return user_ids


async def sql_rank(db: Database, user_id: int) -> int:
    """The slow, obviously right rank, for checking."""
    async with db._conn.execute(
        "SELECT 1 + COUNT(*) FROM members m, members me WHERE me.guild_id = ? AND me.user_id = ? "
        "AND m.guild_id = me.guild_id AND (m.xp > me.xp OR (m.xp = me.xp AND m.user_id < me.user_id))",
        (GUILD, user_id),
    ) as cursor:
        return (await cursor.fetchone())[0]


async def sql_page(db: Database, start: int) -> list[tuple[int, int]]:
    async with db._conn.execute(
        "SELECT user_id, xp FROM members WHERE guild_id = ? ORDER BY xp DESC, user_id LIMIT ? OFFSET ?",
        (GUILD, PAGE_SIZE, start),
    ) as cursor:
        return [(row[0], row[1]) for row in await cursor.fetchall()]


async def measure(members: int, repeat: int, rng: random.Random) -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = await Database.open(Path(folder) / "tally.db")
        start = time.perf_counter()
        user_ids = await populate(db, members, rng)
        populated = time.perf_counter() - start
        tracker = XpTracker(db, xp_per_message=5, cooldown_seconds=0, flush_seconds=1)
        start = time.perf_counter()
        board = await tracker.board(GUILD)
        loaded = time.perf_counter() - start
        print(f"\n{members:,} members in one guild (stored in {populated:.1f} s; board read in {loaded:.2f} s)")

        linear = curve("linear")
        by_rank = board.page(0, members)
        for label, rank in (("rank 1", 1), ("middle", members // 2), ("last", members)):
            user_id = by_rank[rank - 1][0]

            def level_data(user_id: int = user_id) -> tuple:
                return board.rank_of(user_id), len(board), linear.progress(board.xp_of(user_id))

            assert level_data()[0] == rank == await sql_rank(db, user_id)
            print(f"  !level, member at {label:<8} {percentiles(timed(level_data, repeat))}")

        for label, page in (("page 1", 1), ("deep page", (members // PAGE_SIZE) * 9 // 10)):
            first = (page - 1) * PAGE_SIZE

            async def page_data(first: int = first) -> list[tuple[int, str]]:
                rows = board.page(first, PAGE_SIZE)
                names = await db.names(GUILD, [user_id for user_id, _ in rows])
                return [(xp, names[user_id]) for user_id, xp in rows]

            assert board.page(first, PAGE_SIZE) == await sql_page(db, first)
            assert len(await page_data()) == PAGE_SIZE
            print(f"  !leaderboard {label:<10}  {percentiles(await timed_async(page_data, repeat))}")

        for size in (1_000, 10_000):
            samples = []
            for _ in range(max(5, repeat // 100)):
                for user_id in rng.sample(user_ids, size):
                    await tracker.award(GUILD, user_id, "someone")
                start = time.perf_counter()
                assert await tracker.flush() == size
                samples.append(time.perf_counter() - start)
            print(f"  flush of {size:>6,} members   {percentiles(samples)}")
        # the board and the database still agree after the flushes
        some = rng.choice(user_ids)
        assert board.rank_of(some) == await sql_rank(db, some)
        await db.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1000, help="samples per figure")
    parser.add_argument("--quick", action="store_true", help="10,000 and 100,000 members only")
    args = parser.parse_args()
    print(
        f"Python {platform.python_version()}, {platform.machine()}, {platform.system()}; {args.repeat} samples a figure"
    )
    rng = random.Random(20261122)
    for members in (10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000):
        await measure(members, args.repeat, rng)


if __name__ == "__main__":
    asyncio.run(main())
