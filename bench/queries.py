"""How fast are ranks, leaderboard pages, flushes and transfers in a big guild, on SQLite and PostgreSQL?

At 10,000, 100,000 and 1,000,000 members in one guild (skewed XP with many
ties; 10,000 of the members hold 1,000 coins), stored in a real SQLite file
and, side by side in the same run, in a PostgreSQL database of the run's own,
prints p50 and p99 on each backend of:

  * ``!level``'s data work (rank, XP, level progress) for the members at rank 1,
    in the middle and last (memory only: the two columns differ only by noise);
  * ``!leaderboard``'s data work (the page's rows and the stored names of all
    ten members, as if none were in discord.py's cache) for page 1 and a deep page;
  * one flush of 1,000 and of 10,000 pending members (``XpTracker.flush``,
    the write-behind flush the bot runs every second);
  * one coin transfer (``Database.transfer``) between two random members that
    hold coins;
  * the memory one guild's board holds, in bytes a member: what ``tracemalloc``
    traces once it is built, and the process's resident growth while building
    it (target: 60 bytes a member).

Every sample is taken on each backend back to back (the order alternating),
so both columns see the same load on a shared machine. At the end a summary
puts the flush and transfer figures side by side with the ratio
PostgreSQL/SQLite, and the target: a 10,000-member flush under 100 ms on
PostgreSQL.

It also checks that the ranks and pages agree with SQL's own ORDER BY on
each backend, and that both backends end up holding the same XP and coins.

The PostgreSQL server is the one at ``TALLY_BENCH_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres, used only to create and drop
the database ``tally_bench_queries_<pid>``, emptied before each guild size).
After filling it, the script runs ``VACUUM ANALYZE`` there, as autovacuum
would soon after such a load (so it does not run in the middle of the
figures instead). When no server answers, the PostgreSQL column is left out
with one line.

    .venv/bin/python bench/queries.py            # the README's figures
    .venv/bin/python bench/queries.py --quick    # 10,000 and 100,000 only
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import EMPTY_TABLES, POSTGRES_ADMIN_URL, create_database, drop_database, p50_p99, skewed_xp  # noqa: E402

from db import Database, XpGain  # noqa: E402
from levels import curve  # noqa: E402
from storage.postgres import describe  # noqa: E402
from xp import GuildBoard, XpTracker  # noqa: E402

GUILD = 123456789012345678
PAGE_SIZE = 10
COIN_HOLDERS = 10_000  # members with a wallet (1,000 coins each), between whom the transfers run
FLUSH_TARGET = 0.100  # seconds, a 10,000-member flush on PostgreSQL
MEMORY_TARGET = 60  # bytes a member on a board


def percentiles(samples: list[float]) -> str:
    p50, p99 = p50_p99(samples)
    return f"p50 {p50 * 1000:8.3f} ms   p99 {p99 * 1000:8.3f} ms"


@dataclass
class Backend:
    label: str
    db: Database
    tracker: XpTracker | None = None
    board: GuildBoard | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)  # the summary's figures


async def alternating(figures: dict[str, Callable], repeat: int) -> dict[str, list[float]]:
    """``repeat`` timings of each backend's function, taken back to back, the order alternating."""
    samples: dict[str, list[float]] = {key: [] for key in figures}
    keys = list(figures)
    for i in range(repeat):
        for key in keys if i % 2 == 0 else reversed(keys):
            fn = figures[key]
            start = time.perf_counter()
            result = fn()
            if inspect.isawaitable(result):
                await result
            samples[key].append(time.perf_counter() - start)
    return samples


def show(label: str, backends: list[Backend], samples: dict[str, list[float]]) -> None:
    print(f"  {label:<28}" + "     ".join(f"{percentiles(samples[b.label])}" for b in backends), flush=True)


# -- memory ------------------------------------------------------------------------------


def resident_bytes() -> int:
    """The process's resident memory now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def board_memory(rows: list[tuple[int, int]]) -> tuple[float, float]:
    """Bytes a member one guild's board holds, as tracemalloc traces them; and the seconds building it took
    from rows in user ID order (as the database reads them for the bot)."""
    rows = sorted(rows)
    columns = array("Q", (user_id for user_id, _ in rows)), array("q", (xp for _, xp in rows))
    gc.collect()
    start = time.perf_counter()
    board = GuildBoard.from_columns(*columns)
    built = time.perf_counter() - start
    del board
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    board = GuildBoard.from_columns(*columns)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(board) == len(rows)  # (and the board lived until it was measured)
    return held / len(rows), built


def resident_growth(members: int) -> float:
    """Bytes a member the process's resident memory grows by while a board is built from rows it holds.

    Measured in a fresh process of its own (``--resident``): in this one, memory
    freed by the filling would be reused and hide the growth.
    """
    answer = subprocess.run(
        [sys.executable, __file__, "--resident", str(members)], capture_output=True, text=True, check=True
    )
    return float(answer.stdout)


def print_resident_growth(members: int) -> None:
    rng = random.Random(members)
    user_ids = sorted(rng.sample(range(10**17, 10**18), members))
    columns = array("Q", user_ids), array("q", (skewed_xp(rng) for _ in user_ids))
    del user_ids
    gc.collect()
    before = resident_bytes()
    board = GuildBoard.from_columns(*columns)
    gc.collect()
    growth = resident_bytes() - before
    assert len(board) == members
    print(growth / members)


# -- filling and checking -----------------------------------------------------------------


def member_rows(members: int, rng: random.Random) -> tuple[list[int], list[XpGain]]:
    user_ids = rng.sample(range(10**17, 10**18), members)
    holders = set(rng.sample(user_ids, min(COIN_HOLDERS, members)))
    rows = [XpGain(GUILD, u, skewed_xp(rng), f"member{u % 100000}", 0, 1000 * (u in holders)) for u in user_ids]
    return user_ids, rows


async def populate(db: Database, rows: list[XpGain]) -> None:
    for start in range(0, len(rows), 50_000):
        await db.add_xp(rows[start : start + 50_000])


async def sql_rank(db: Database, user_id: int) -> int:
    """The slow, obviously right rank, for checking."""
    rows = await db._store.fetch(
        "SELECT 1 + COUNT(*) FROM members m, members me WHERE me.guild_id = $1 AND me.user_id = $2 "
        "AND m.guild_id = me.guild_id AND (m.xp > me.xp OR (m.xp = me.xp AND m.user_id < me.user_id))",
        GUILD,
        user_id,
    )
    return rows[0][0]


async def sql_page(db: Database, start: int) -> list[tuple[int, int]]:
    rows = await db._store.fetch(
        "SELECT user_id, xp FROM members WHERE guild_id = $1 ORDER BY xp DESC, user_id LIMIT $2 OFFSET $3",
        GUILD,
        PAGE_SIZE,
        start,
    )
    return [(row[0], row[1]) for row in rows]


async def totals(db: Database) -> tuple[int, ...]:
    """Members, their XP, wallets, their coins and ledger rows: equal on both backends after the same work."""
    row = (
        await db._store.fetch(
            "SELECT (SELECT COUNT(*) FROM members), (SELECT SUM(xp) FROM members), (SELECT COUNT(*) FROM wallets), "
            "(SELECT SUM(coins) FROM wallets), (SELECT COUNT(*) FROM ledger)"
        )
    )[0]
    return tuple(int(value) for value in row)


# -- one guild size ---------------------------------------------------------------------


async def open_backends(folder: str, postgres_url: str | None) -> list[Backend]:
    backends = [Backend("SQLite", await Database.open(Path(folder) / "tally.db"))]
    if postgres_url is not None:
        db = await Database.open(postgres_url)
        async with db.transaction() as conn:  # each guild size starts from empty tables
            await conn.execute(EMPTY_TABLES)
        backends.append(Backend("PostgreSQL", db))
    return backends


async def measure(members: int, args: argparse.Namespace, rng: random.Random, postgres_url: str | None) -> list:
    with tempfile.TemporaryDirectory() as folder:
        backends = await open_backends(folder, postgres_url)
        try:
            return await measure_on(backends, members, args, rng)
        finally:
            for backend in backends:
                await backend.db.close()


async def measure_on(backends: list[Backend], members: int, args: argparse.Namespace, rng: random.Random) -> list:
    repeat = args.repeat
    user_ids, rows = member_rows(members, rng)
    holders = [row.user_id for row in rows if row.coins]
    stored, loaded = [], []
    for backend in backends:
        start = time.perf_counter()
        await populate(backend.db, rows)
        if backend.db.dialect == "postgres":
            await backend.db._store.execute("VACUUM ANALYZE")
        stored.append(f"{backend.label} {time.perf_counter() - start:.1f} s")
        backend.tracker = XpTracker(backend.db, xp_per_message=5, cooldown_seconds=0, flush_seconds=1)
        start = time.perf_counter()
        backend.board = await backend.tracker.board(GUILD)
        loaded.append(f"{backend.label} {time.perf_counter() - start:.2f} s")
    print(f"\n{members:,} members in one guild (stored in {', '.join(stored)}; board read in {', '.join(loaded)})")
    traced, built = board_memory([(row.user_id, row.xp) for row in rows])
    resident = resident_growth(members)
    verdict = "met" if max(traced, resident) <= MEMORY_TARGET else "NOT met"
    print(
        f"  board memory: {traced:.1f} bytes a member held (tracemalloc), {resident:.1f} bytes a member of "
        f"resident growth (a process of its own); built from rows in {built:.2f} s   "
        f"(target <= {MEMORY_TARGET} bytes: {verdict})"
    )
    print(f"  {'':<28}" + "     ".join(f"{b.label:<43}" for b in backends).rstrip())

    linear = curve("linear")
    by_rank = backends[0].board.page(0, members)
    for backend in backends[1:]:
        assert backend.board.page(0, members) == by_rank
    for label, rank in (("rank 1", 1), ("middle", members // 2), ("last", members)):
        user_id = by_rank[rank - 1][0]
        figures = {}
        for backend in backends:

            def level_data(board: GuildBoard = backend.board, user_id: int = user_id) -> tuple:
                return board.rank_of(user_id), len(board), linear.progress(board.xp_of(user_id))

            assert level_data()[0] == rank == await sql_rank(backend.db, user_id)
            figures[backend.label] = level_data
        show(f"!level, member at {label}", backends, await alternating(figures, repeat))

    for label, page in (("page 1", 1), ("deep page", (members // PAGE_SIZE) * 9 // 10)):
        first = (page - 1) * PAGE_SIZE
        figures = {}
        for backend in backends:

            async def page_data(backend: Backend = backend, first: int = first) -> list[tuple[int, str]]:
                rows = backend.board.page(first, PAGE_SIZE)
                names = await backend.db.names(GUILD, [user_id for user_id, _ in rows])
                return [(xp, names[user_id]) for user_id, xp in rows]

            assert backend.board.page(first, PAGE_SIZE) == await sql_page(backend.db, first)
            assert len(await page_data()) == PAGE_SIZE
            figures[backend.label] = page_data
        show(f"!leaderboard {label}", backends, await alternating(figures, repeat))

    for size in (1_000, 10_000):
        samples = {backend.label: [] for backend in backends}
        for i in range(max(5, repeat // 100)):
            chosen = rng.sample(user_ids, size)
            for backend in backends if i % 2 == 0 else reversed(backends):
                for user_id in chosen:
                    await backend.tracker.award(GUILD, user_id, "someone")
                start = time.perf_counter()
                assert await backend.tracker.flush() == size
                samples[backend.label].append(time.perf_counter() - start)
        show(f"flush of {size:,} members", backends, samples)
        for backend in backends:
            backend.samples[f"flush of {size:,} members"] = samples[backend.label]

    pairs = [rng.sample(holders, 2) + [rng.randrange(1, 50)] for _ in range(args.transfers)]
    samples = {backend.label: [] for backend in backends}
    for i, (from_id, to_id, amount) in enumerate(pairs):
        for backend in backends if i % 2 == 0 else reversed(backends):
            start = time.perf_counter()
            await backend.db.transfer(GUILD, from_id, to_id, amount, from_name="sender", to_name="receiver")
            samples[backend.label].append(time.perf_counter() - start)
    show(f"transfer ({args.transfers} samples)", backends, samples)
    for backend in backends:
        backend.samples["transfer"] = samples[backend.label]

    # the boards and the databases still agree after the flushes, and both backends hold the same
    some = rng.choice(user_ids)
    for backend in backends:
        assert backend.board.rank_of(some) == await sql_rank(backend.db, some)
    assert len({await totals(backend.db) for backend in backends}) == 1
    return [(members, backend.label, backend.samples) for backend in backends]


# -- the summary -------------------------------------------------------------------------


def summary(results: list) -> None:
    """The flush and transfer figures of every guild size side by side, with PostgreSQL/SQLite."""
    by_size: dict[int, dict[str, dict[str, list[float]]]] = {}
    for members, label, samples in results:
        by_size.setdefault(members, {})[label] = samples
    both = all("PostgreSQL" in backends for backends in by_size.values())
    print("\nSummary (p50 / p99, ms)")
    print(
        f"  {'members':>9}  {'figure':<24}{'SQLite':>19}"
        + (f"{'PostgreSQL':>19}  {'PostgreSQL/SQLite (p50)':>23}" if both else "")
    )
    for members, backends in by_size.items():
        for figure in backends["SQLite"]:
            cells = {label: p50_p99(samples[figure]) for label, samples in backends.items()}
            line = f"  {members:>9,}  {figure:<24}"
            for label in ("SQLite", "PostgreSQL"):
                if label in cells:
                    line += f"  {cells[label][0] * 1000:>8.2f} / {cells[label][1] * 1000:>6.2f}"
            if both:
                line += f"  {cells['PostgreSQL'][0] / cells['SQLite'][0]:>23.2f}"
            print(line)
    if not both:
        return
    for members, backends in by_size.items():
        p50, p99 = p50_p99(backends["PostgreSQL"]["flush of 10,000 members"])
        verdict = "met" if p99 < FLUSH_TARGET else ("met at p50 only" if p50 < FLUSH_TARGET else "NOT met")
        print(
            f"10,000-member flush on PostgreSQL, {members:,}-member guild: p50 {p50 * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms   (target < {FLUSH_TARGET * 1000:.0f} ms: {verdict})"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1000, help="samples per figure (flushes: a hundredth, min 5)")
    parser.add_argument("--transfers", type=int, default=500, help="transfers timed per guild size")
    parser.add_argument("--quick", action="store_true", help="10,000 and 100,000 members only")
    parser.add_argument("--resident", type=int, help=argparse.SUPPRESS)  # resident_growth()'s own process
    args = parser.parse_args()
    if args.resident:
        print_resident_growth(args.resident)
        return
    print(
        f"Python {platform.python_version()}, {platform.machine()}, {platform.system()}; {args.repeat} samples a figure"
    )
    rng = random.Random(20261122)
    name = f"tally_bench_queries_{os.getpid()}"
    postgres_url = await create_database(
        POSTGRES_ADMIN_URL, name, "PostgreSQL left out: no server answers at {server} ({error})"
    )
    if postgres_url is not None:
        print(
            f"PostgreSQL: the database {name} on {describe(POSTGRES_ADMIN_URL).rsplit('/', 1)[0]}, dropped at the end"
        )
    results = []
    try:
        for members in (10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000):
            results += await measure(members, args, rng, postgres_url)
    finally:
        if postgres_url is not None:
            await drop_database(POSTGRES_ADMIN_URL, name)
    summary(results)


if __name__ == "__main__":
    asyncio.run(main())
