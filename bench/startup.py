"""What would SQLite's PRAGMA quick_check cost at start-up on a big Tally database?

Builds a Tally database (``db.Database.open`` creates the schema) in a
temporary folder, or at ``--path``, and fills it like a busy instance: the
``members`` table with 1,000,000 members across five guilds of skewed sizes,
and in proportion 200,000 wallets, 500,000 ledger rows and 10,000 cases (one
in ten with a corrected reason), written with plain sqlite3 ``executemany``
INSERTs in key order, for speed. Then, each on a fresh sqlite3 connection and
in several rounds, it times:

  PRAGMA quick_check       cold (the file first dropped from the OS page cache
                           with fsync and posix_fadvise(POSIX_FADV_DONTNEED)),
                           then warm, right after
  PRAGMA integrity_check   the same, for comparison (it also checks that every
                           index matches its table)
  Database.open            Tally's whole opening of the file, with every check
                           db.py makes at start-up (one ``PRAGMA quick_check(5)``
                           among them), cold then warm
  Database.open as closed  the same of a file as Tally's last close left it
                           (``<file>.closed`` records that): no page check

and prints the file's size, the median and max seconds of each (wall clock,
and CPU of the calling thread: SQLite does the work there), and how much of
the file was in the page cache before each cold run (Linux ``mincore``), so a
cold figure can be trusted.

    .venv/bin/python bench/startup.py                       # 1,000,000 members
    .venv/bin/python bench/startup.py --quick               # 100,000 members
    .venv/bin/python bench/startup.py --members 3000000
    .venv/bin/python bench/startup.py --path /some/tally.db # measure (or build and keep) that file

With ``--path`` an existing file is measured as it is, never filled: it must
be at this Tally's schema version, so that ``Database.open`` finds nothing to
upgrade and changes nothing. A missing file is built there and kept.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db import SCHEMA_VERSION, Database  # noqa: E402
from storage.sqlite import closed_mark  # noqa: E402

GUILD_SHARES = (0.40, 0.30, 0.15, 0.10, 0.05)  # a few big servers and a tail
GUILD_BASE = 100000000000000000
DAY = 86400
NOW = 1_795_000_000  # a fixed "now" (late 2026): the same file every run
OPENS = ("Database.open", "Database.open as closed")  # a file changed since Tally closed it, and one as it closed it
WORDS = ["nova", "pixel", "storm", "cat", "river", "ghost", "lemon", "byte", "echo", "mango", "frost", "owl", "zen"]
KINDS = ["daily"] * 6 + ["level_up"] * 2 + ["transfer"] * 3 + ["give", "take", "set"]
REASONS = ["spam", "being rude in #general", "posting invite links", "raid", "NSFW in a SFW channel", None]
BATCH = 50_000


# -- building the file ------------------------------------------------------------------


def name(rng: random.Random) -> str:
    return rng.choice(WORDS).title() + rng.choice(WORDS) + str(rng.randrange(10_000))


def guild_members(members: int, rng: random.Random) -> dict[int, list[int]]:
    """Guild ID -> its members' user IDs, sorted (the table's key order)."""
    guilds = {}
    left = members
    for i, share in enumerate(GUILD_SHARES):
        count = left if i == len(GUILD_SHARES) - 1 else int(members * share)
        left -= count
        guilds[GUILD_BASE + i * 1_000_003] = sorted(rng.sample(range(10**17, 10**18), count))
    return guilds


def batches(rows, size: int = BATCH):
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(path: Path, members: int, rng: random.Random) -> dict[str, int]:
    """Fill a new Tally database; returns the row count of each table."""
    guilds = guild_members(members, rng)
    everyone = [(g, u) for g, users in guilds.items() for u in users]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # a benchmark's scratch file: speed over safety while filling
    conn.execute("PRAGMA cache_size = -262144")  # 256 MiB
    conn.execute("BEGIN")

    def member_rows():
        for g, u in everyone:
            xp = 5 * max(1, int(rng.paretovariate(1.2)))
            yield g, u, xp, name(rng), NOW - rng.randrange(730 * DAY)

    for batch in batches(member_rows()):
        conn.executemany("INSERT INTO members (guild_id, user_id, xp, name, first_seen) VALUES (?, ?, ?, ?, ?)", batch)

    wallets = sorted(rng.sample(everyone, members // 5))
    conn.executemany(
        "INSERT INTO wallets (guild_id, user_id, coins, last_daily, name) VALUES (?, ?, ?, ?, ?)",
        (
            (g, u, rng.randrange(0, 50_000), NOW - rng.randrange(60 * DAY) if rng.random() < 0.7 else None, name(rng))
            for g, u in wallets
        ),
    )

    def ledger_rows():
        start = NOW - 365 * DAY
        count = members // 2
        for i in range(count):
            g, u = rng.choice(wallets)
            kind = rng.choice(KINDS)
            other = rng.choice(guilds[g])
            from_id, to_id, actor = {
                "daily": (None, u, u),
                "level_up": (None, u, u),
                "transfer": (u, other, u),
                "give": (None, u, other),
                "take": (u, None, other),
                "set": (None, u, other),
            }[kind]
            reason = rng.choice(REASONS) if kind in ("give", "take", "set") else None
            yield g, from_id, to_id, rng.randrange(1, 500), kind, actor, reason, start + i * 365 * DAY // count

    for batch in batches(ledger_rows()):
        conn.executemany(
            "INSERT INTO ledger (guild_id, from_id, to_id, amount, kind, actor_id, reason, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )

    cases = []
    for g, users in guilds.items():
        for number in range(1, max(1, len(users) // 100) + 1):
            target = rng.choice(users)
            cases.append(
                (
                    g,
                    number,
                    rng.choice(("warn", "warn", "warn", "kick", "ban")),
                    target,
                    name(rng),
                    rng.choice(users[:20]),  # a handful of moderators
                    rng.choice(REASONS),
                    NOW - rng.randrange(365 * DAY),
                )
            )
    conn.executemany(
        "INSERT INTO cases (guild_id, number, action, target_id, target_name, moderator_id, reason, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        cases,
    )
    conn.executemany(
        "INSERT INTO case_reasons (guild_id, number, reason, moderator_id, replaced_at) VALUES (?, ?, ?, ?, ?)",
        ((c[0], c[1], "first draft", c[5], c[7] + 60) for c in cases[::10]),
    )
    conn.executemany(  # a few servers' settings, as !settings stores them
        "INSERT INTO guild_settings (guild_id, name, value) VALUES (?, ?, ?)",
        [(g, "prefix", "?") for g in list(guilds)[:2]] + [(g, "modlog", str(g + 1)) for g in list(guilds)[:3]],
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    conn.close()
    return table_counts(path)


COUNTS = {
    "members": "SELECT COUNT(*) FROM members",
    "wallets": "SELECT COUNT(*) FROM wallets",
    "ledger": "SELECT COUNT(*) FROM ledger",
    "cases": "SELECT COUNT(*) FROM cases",
    "case_reasons": "SELECT COUNT(*) FROM case_reasons",
}


def table_counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {table: conn.execute(query).fetchone()[0] for table, query in COUNTS.items()}
    finally:
        conn.close()


def schema_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


# -- the page cache ------------------------------------------------------------------------


def database_files(path: Path) -> list[Path]:
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


def drop_from_cache(path: Path) -> bool:
    """Ask the OS to forget the file's pages (written back first). False where that is unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for file in database_files(path):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def cached_fraction(path: Path) -> float | None:
    """The share of the file's pages in the page cache (Linux mincore), or None if unknown."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        size = path.stat().st_size
        page = os.sysconf("SC_PAGE_SIZE")
        pages = (size + page - 1) // page
        fd = os.open(path, os.O_RDONLY)
        try:
            address = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        finally:
            os.close(fd)
        if address in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            vector = (ctypes.c_ubyte * pages)()
            if libc.mincore(address, size, vector) != 0:
                return None
            return sum(v & 1 for v in vector) / pages
        finally:
            libc.munmap(address, size)
    except (OSError, AttributeError, ValueError):
        return None


# -- timing ---------------------------------------------------------------------------------


def pragma(path: Path, statement: str) -> tuple[float, float, str]:
    """Wall and CPU seconds of one check on a fresh connection, and its answer."""
    wall, cpu = time.perf_counter(), time.thread_time()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(statement).fetchall()
    finally:
        conn.close()
    answer = "; ".join(str(row[0]) for row in rows[:3])
    return time.perf_counter() - wall, time.thread_time() - cpu, answer


async def open_database(path: Path, as_closed: bool) -> tuple[float, float, str]:
    """Wall seconds of Tally's Database.open (its SQL runs in aiosqlite's thread: no CPU figure): of a
    file as Tally's last close left it (``<file>.closed`` says so: no page check), or of one changed since."""
    if not as_closed:
        closed_mark(path).unlink(missing_ok=True)
    wall = time.perf_counter()
    db = await Database.open(path)
    elapsed = time.perf_counter() - wall
    await db.close()
    return elapsed, float("nan"), "opened"


def seconds(values: list[float]) -> str:
    if any(v != v for v in values):  # NaN: not measured
        return f"{'-':>9} {'-':>9}"
    return f"{statistics.median(values):9.3f} {max(values):9.3f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 members, 2 rounds")
    parser.add_argument("--rounds", type=int, default=3, help="cold and warm runs of each check")
    parser.add_argument("--path", type=Path, help="measure this file, or build it here and keep it")
    args = parser.parse_args()
    if args.quick:
        args.members, args.rounds = 100_000, 2
    print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {platform.machine()}, "
        f"{platform.system()}, {os.cpu_count()} CPUs"
    )

    with tempfile.TemporaryDirectory() as folder:
        path = args.path or Path(folder) / "tally.db"
        if path.exists():
            if (version := schema_version(path)) != SCHEMA_VERSION:
                sys.exit(f"{path} has schema version {version}, not {SCHEMA_VERSION}: Database.open would change it")
            print(f"measuring {path} as it is")
            counts = table_counts(path)
        else:
            start = time.perf_counter()
            db = await Database.open(path)  # the real schema, as Tally creates it
            await db.close()
            counts = fill(path, args.members, random.Random(20261122))
            print(f"built in {time.perf_counter() - start:.1f} s")
        size = sum(p.stat().st_size for p in database_files(path))
        print(", ".join(f"{n:,} {table}" for table, n in counts.items()) + f"; {size / 2**20:,.1f} MiB")

        checks: dict[str, Callable[[], tuple[float, float, str]]] = {
            "PRAGMA quick_check": lambda: pragma(path, "PRAGMA quick_check"),
            "PRAGMA integrity_check": lambda: pragma(path, "PRAGMA integrity_check"),
        }
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        resident: list[float] = []
        answers: dict[str, set[str]] = {}
        can_drop = True
        for round_ in range(1, args.rounds + 1):
            line = []
            for label in [*checks, *OPENS]:
                for state in ("cold", "warm"):
                    if state == "cold":
                        can_drop = drop_from_cache(path)
                        if (fraction := cached_fraction(path)) is not None:
                            resident.append(fraction)
                    if label in OPENS:
                        wall, cpu, answer = await open_database(path, as_closed=label == OPENS[1])
                    else:
                        wall, cpu, answer = checks[label]()
                    answers.setdefault(label, set()).add(answer)
                    results.setdefault((label, state), []).append((wall, cpu))
                    line.append(f"{label.split()[-1]} {state} {wall:.2f} s")
            print(f"round {round_}: " + ", ".join(line), flush=True)

        if not can_drop:
            print("(posix_fadvise is not available here: the cold runs are not cold)")
        print()
        print(f"{'':<24}{'':<6}{'wall s':>19}{'CPU s':>20}")
        print(f"{'':<24}{'':<6}{'median':>9} {'max':>9}{'median':>10} {'max':>9}   answer")
        for label in [*checks, *OPENS]:
            for state in ("cold", "warm"):
                runs = results[label, state]
                print(
                    f"{label:<24}{state:<6}{seconds([w for w, _ in runs])} {seconds([c for _, c in runs])}   "
                    f"{' / '.join(sorted(answers[label]))}"
                )
        if resident:
            print(f"page cache before the cold runs: at most {max(resident):.1%} of the file resident")
        else:
            print("page cache before the cold runs: unknown (no mincore here)")
        assert answers["PRAGMA quick_check"] == {"ok"} and answers["PRAGMA integrity_check"] == {"ok"}

        quick = statistics.median(w for w, _ in results["PRAGMA quick_check", "warm"])
        quick_cold = statistics.median(w for w, _ in results["PRAGMA quick_check", "cold"])
        opened = [statistics.median(w for w, _ in results[label, "warm"]) for label in OPENS]
        opened_cold = [statistics.median(w for w, _ in results[label, "cold"]) for label in OPENS]
        print(
            f"\nquick_check on {counts['members']:,} members ({size / 2**20:,.0f} MiB): {quick:.2f} s warm, "
            f"{quick_cold:.2f} s cold; a whole Database.open: {opened[0]:.2f} s warm, {opened_cold[0]:.2f} s cold; "
            f"of a file as Tally closed it: {opened[1]:.3f} s warm, {opened_cold[1]:.3f} s cold"
        )


if __name__ == "__main__":
    asyncio.run(main())
