"""Does ``python bot.py export`` stay in bounded memory for a server of a million members?

Builds one server of N members (1,000,000 by default) with coins for a
thousand of them, on SQLite and, when a server answers, on PostgreSQL (a database of
the run's own, dropped at the end), then runs the real command as a child
process, JSON and CSV, and prints for each: the time, the file's size, the
child's peak resident memory (``ru_maxrss``), and the same peak for an
export of a server of 10,000 members, which is the baseline the big one must
stay close to if it streams.

    .venv/bin/python bench/export.py                 # the README's figures
    .venv/bin/python bench/export.py --members 200000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import POSTGRES_ADMIN_URL, create_database, drop_database  # noqa: E402

from db import Database, XpGain  # noqa: E402

BIG, SMALL = 900_000_000_000_000_001, 900_000_000_000_000_002
BATCH = 100_000


async def fill(target: Path | str, guild_id: int, members: int) -> None:
    db = await Database.open(target)
    try:
        for start in range(0, members, BATCH):
            users = range(10**17 + start, 10**17 + min(start + BATCH, members))
            await db.add_xp(
                [XpGain(guild_id, user, 1 + user % 5000, f"member {user % 100000}", 1_700_000_000) for user in users]
            )
        for user in range(10**17, 10**17 + 1000):  # coins and a ledger row for a thousand of them
            await db.grant(guild_id, user, "member", 100, "give", 1)
    finally:
        await db.close()


# Runs bot.py as `python bot.py ...` would, then prints the process's own peak resident memory (VmHWM,
# which exec resets: a forked child's ru_maxrss would count its parent's pages too).
MEASURED = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    with open('/proc/self/status') as status:\n"
    "        kb = next(line.split()[1] for line in status if line.startswith('VmHWM'))\n"
    "    print('peak-kb', kb, file=sys.stderr)\n"
    "atexit.register(peak)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def export(env: dict[str, str], guild_id: int, fmt: str, out: Path) -> tuple[float, int, int]:
    """Seconds, output bytes and the process's peak resident memory in bytes, for one run of the real command."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, str(ROOT / "bot.py"), "export", "--guild", str(guild_id), "--format", fmt]
        + ["--out", str(out)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"export of {guild_id} as {fmt} failed: {done.stderr.strip()[-300:]}")
    peak_kb = int(next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("peak-kb")))
    size = out.stat().st_size if out.is_file() else sum(p.stat().st_size for p in out.iterdir())
    return seconds, size, peak_kb * 1024


async def run_backend(name: str, target: Path | str, env: dict[str, str], members: int, folder: Path) -> None:
    print(f"{name}: filling {members:,} members and 10,000 ...", flush=True)
    await fill(target, BIG, members)
    await fill(target, SMALL, 10_000)
    for fmt in ("json", "csv"):
        small = export(env, SMALL, fmt, folder / f"{name}-small.{fmt}")
        big = export(env, BIG, fmt, folder / f"{name}-big.{fmt}")
        print(
            f"  {fmt}: 10,000 members {small[0]:.1f} s, {small[1] / 2**20:,.1f} MiB, peak RSS {small[2] / 2**20:,.0f} MiB; "
            f"{members:,} members {big[0]:.1f} s, {big[1] / 2**20:,.0f} MiB, peak RSS {big[2] / 2**20:,.0f} MiB",
            flush=True,
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "tally.db"
        await run_backend("SQLite", path, {"DATABASE_PATH": str(path), "DATABASE_URL": ""}, args.members, folder)
        name = f"tally_bench_export_{os.getpid()}"
        url = await create_database(
            POSTGRES_ADMIN_URL, name, "PostgreSQL skipped: no server answers at {server} ({error})"
        )
        if url is not None:
            try:
                await run_backend("PostgreSQL", url, {"DATABASE_URL": url}, args.members, folder)
            finally:
                await drop_database(POSTGRES_ADMIN_URL, name)


if __name__ == "__main__":
    asyncio.run(main())
