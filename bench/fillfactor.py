"""Does ``members`` with fillfactor 70 make the XP flush faster on PostgreSQL?

schema_postgres.sql creates ``members`` WITH (fillfactor = 70): each page
keeps 30 % free, so the flush's update of a member's XP can be written beside
the old row in the same page (a HOT update) without a new entry in the
primary key's index. This times ``Database.add_xp`` (the real flush) of
10,000 random members of one guild of 10,000, 100,000 and 1,000,000 members,
on two databases made by Tally itself, one of them altered back to
PostgreSQL's default fillfactor 100; both filled alike and vacuumed, then
flushed alternately (12 rounds, the order swapped each round). Prints the
p50 of each and the median of the per-round ratios 100/70.

The server is the one at ``TALLY_BENCH_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres, used only to create and drop
the databases ``tally_bench_fillfactor_<pid>_<fillfactor>``).

    .venv/bin/python bench/fillfactor.py
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import POSTGRES_ADMIN_URL, create_database, drop_database  # noqa: E402

from db import Database, XpGain  # noqa: E402

GUILD = 123456789012345678
FLUSHED = 10_000
ROUNDS = 12


async def fill(db: Database, members: int) -> None:
    await db._store.execute("TRUNCATE members")
    await db._store.execute(
        "INSERT INTO members (guild_id, user_id, xp, name, first_seen) "
        "SELECT $1, g, (random() * 100000)::bigint, 'member ' || g, 0 FROM generate_series(1, $2::bigint) g",
        GUILD,
        members,
    )
    await db._store.execute("VACUUM ANALYZE members")


async def main() -> None:
    names = {factor: f"tally_bench_fillfactor_{os.getpid()}_{factor}" for factor in (100, 70)}
    dbs: dict[int, Database] = {}
    created: list[str] = []
    try:
        for factor, name in names.items():
            url = await create_database(POSTGRES_ADMIN_URL, name, "no PostgreSQL server answers at {server} ({error})")
            if url is None:
                return
            created.append(name)
            dbs[factor] = await Database.open(url)
        await dbs[100]._store.execute("ALTER TABLE members SET (fillfactor = 100)")
        print(f"flush of {FLUSHED:,} random members, {ROUNDS} rounds, fillfactor 100 and 70 alternating")
        for members in (10_000, 100_000, 1_000_000):
            for db in dbs.values():
                await fill(db, members)
            times: dict[int, list[float]] = {100: [], 70: []}
            for i in range(ROUNDS):
                chosen = random.sample(range(1, members + 1), FLUSHED)
                gains = [XpGain(GUILD, user_id, 20, f"member {user_id}", 0, 0) for user_id in chosen]
                for factor in (100, 70) if i % 2 else (70, 100):
                    start = time.perf_counter()
                    await dbs[factor].add_xp(gains)
                    times[factor].append(time.perf_counter() - start)
            ratio = statistics.median(slow / fast for slow, fast in zip(times[100], times[70], strict=True))
            print(
                f"{members:>9,} members: fillfactor 100 p50 {statistics.median(times[100]) * 1000:6.1f} ms, "
                f"70 p50 {statistics.median(times[70]) * 1000:6.1f} ms; 100/70 = {ratio:.2f}",
                flush=True,
            )
    finally:
        for db in dbs.values():
            await db.close()
        for name in created:
            await drop_database(POSTGRES_ADMIN_URL, name)


if __name__ == "__main__":
    asyncio.run(main())
