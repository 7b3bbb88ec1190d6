"""``python bot.py backup`` and ``restore``: verified copies while the bot chats, rotation, refusals, the way back."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import field, seed_xp


async def tool(storage, folder: Path, *arguments: str, path: str | None = None) -> tuple[int, str, str]:
    """Run ``python bot.py <arguments>`` in ``folder`` on the test's database; exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        *arguments,
        cwd=folder,
        env={"PATH": os.environ.get("PATH", "") if path is None else path, **storage.env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, out.decode(), err.decode()


def backups_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.name.startswith("tally-2"))


def members_in_sqlite_backup(path: Path) -> dict[int, int]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return dict(conn.execute("SELECT user_id, xp FROM members"))
    finally:
        conn.close()


async def test_a_backup_while_the_bot_chats_is_consistent_and_verified_and_nothing_is_lost(
    world, tally, storage, tmp_path
):
    bot = await tally(XP_PER_MESSAGE="1", XP_FLUSH_SECONDS="0.05")
    for _ in range(20):
        await world.say(world.alice, "chat")
    await world.ask(world.alice, "!level")  # written by now: the flush runs every 50 ms
    chatting = asyncio.gather(*(world.say(world.bob, "chat") for _ in range(30)))
    code, out, err = await tool(storage, tmp_path, "backup", "--to", "saved")
    await chatting
    assert code == 0, err
    assert out.startswith("backed up to saved/tally-") and "verified" in out
    (made,) = backups_in(tmp_path / "saved")
    if storage.backend == "sqlite":
        assert made.suffix == ".db"
        assert members_in_sqlite_backup(made)[world.alice.id] >= 20  # what was written before the backup began
        assert not [path for path in (tmp_path / "saved").iterdir() if path != made]  # no -wal, -shm or .partial
    else:
        assert made.suffix == ".dump" and made.stat().st_size > 0
    assert field(await world.ask(world.bob, "!level"), "Total XP") == "30"
    assert await bot.stop() == 0
    assert await storage.xp(world.guild.id) == {world.alice.id: 20, world.bob.id: 30}


@pytest.mark.backends("sqlite")
async def test_keep_leaves_the_newest_n_backups(storage, tmp_path):
    await seed_xp(storage, 1, [(7, 10, "seven")])
    made = []
    for _ in range(4):
        code, out, err = await tool(storage, tmp_path, "backup", "--keep", "2")
        assert code == 0, err
        made.append(out.split()[3])
    assert "removed the older backup" in out
    assert [str(path.relative_to(tmp_path)) for path in backups_in(tmp_path / "data" / "backups")] == sorted(made[2:])
    code, _, err = await tool(storage, tmp_path, "backup", "--keep", "0")
    assert code == 2 and "--keep: must be a whole number of at least 1" in err


@pytest.mark.backends("sqlite")
async def test_a_missing_database_is_an_error_never_an_empty_backup(storage, tmp_path):
    code, out, err = await tool(storage, tmp_path, "backup", "--to", "saved")
    assert code == 2 and out == ""
    assert err.strip() == "tally backup: there is no database at data/tally.db to back up (check DATABASE_PATH)"
    assert not (tmp_path / "saved").exists() and not (tmp_path / "data" / "tally.db").exists()


@pytest.mark.backends("postgres")
async def test_without_pg_dump_a_postgresql_backup_says_so_in_one_line(storage, tmp_path):
    await seed_xp(storage, 1, [(7, 10, "seven")])
    python_only = str(Path(sys.executable).parent)  # no PostgreSQL client tools on this PATH
    code, out, err = await tool(storage, tmp_path, "backup", path=python_only)
    assert code == 2 and out == ""
    assert err.startswith("tally backup: pg_dump is not installed: install PostgreSQL's client tools")
    assert err.count("\n") == 1


async def test_restore_puts_the_backup_back_and_keeps_the_replaced_database_aside(world, tally, storage, tmp_path):
    await seed_xp(storage, world.guild.id, [(world.alice.id, 100, "alice")])
    code, out, err = await tool(storage, tmp_path, "backup", "--to", "saved")
    assert code == 0, err
    (made,) = backups_in(tmp_path / "saved")
    bot = await tally(XP_PER_MESSAGE="1")
    await world.say(world.alice, "chat")
    await world.ask(world.alice, "!level")
    code, out, err = await tool(storage, tmp_path, "restore", str(made))  # refused while the bot runs
    assert code == 2 and "stop" in err and "Tally" in err
    assert await bot.stop() == 0
    assert (await storage.xp(world.guild.id))[world.alice.id] == 101

    code, out, err = await tool(storage, tmp_path, "restore", str(made))
    assert code == 0, err
    assert out.startswith(f"restored {made}; the database it replaced is kept as ")
    assert (await storage.xp(world.guild.id))[world.alice.id] == 100
    aside = Path(tmp_path / out.split("kept as ")[1].split(". Start")[0])
    if storage.backend == "sqlite":
        assert members_in_sqlite_backup(aside)[world.alice.id] == 101
    else:
        assert aside.parent == tmp_path / "data" / "backups" and aside.stat().st_size > 0
    await tally()
    assert field(await world.ask(world.alice, "!level"), "Total XP") == "100"


async def test_restore_refuses_a_file_that_is_not_a_backup_and_changes_nothing(storage, tmp_path):
    await seed_xp(storage, 1, [(7, 10, "seven")])
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    code, out, err = await tool(storage, tmp_path, "restore", str(junk))
    assert code == 2 and out == ""
    assert err.startswith("tally restore: ") and "junk.db" in err and err.count("\n") == 1
    assert await storage.xp(1) == {7: 10}
    code, _, err = await tool(storage, tmp_path, "restore", str(tmp_path / "missing.db"))
    assert code == 2 and "there is no backup at" in err


@pytest.mark.backends("sqlite")
async def test_a_file_that_is_not_a_tally_database_is_not_backed_up(storage, tmp_path):
    (tmp_path / "data").mkdir()
    sqlite3.connect(tmp_path / "data" / "tally.db").close()  # an empty SQLite file, as a typo in a path leaves
    code, out, err = await tool(storage, tmp_path, "backup", "--to", "saved")
    assert code == 2 and out == ""
    assert err.strip() == "tally backup: data/tally.db is not a Tally database (check DATABASE_PATH)"
    assert not list((tmp_path / "saved").iterdir())
