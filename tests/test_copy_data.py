"""``python bot.py copy-data``: SQLite to PostgreSQL and back, every row kept, refusals, a failed copy left empty."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys

import pytest

from db import Database, XpGain
from tests.conftest import ROOT

pytestmark = pytest.mark.backends("postgres")  # the target; the source is a SQLite file beside it

GUILD, OTHER = 555555555555555555, 666666666666666666
TABLES = {
    "guild_settings": "SELECT guild_id, name, value FROM guild_settings ORDER BY 1, 2",
    "members": "SELECT guild_id, user_id, xp, name, first_seen FROM members ORDER BY 1, 2",
    "wallets": "SELECT guild_id, user_id, coins, last_daily, name FROM wallets ORDER BY 1, 2",
    "ledger": "SELECT id, guild_id, from_id, to_id, amount, kind, actor_id, reason, created_at FROM ledger ORDER BY 1",
    "cases": "SELECT guild_id, number, action, target_id, target_name, moderator_id, reason, created_at FROM cases "
    "ORDER BY 1, 2",
    "case_reasons": "SELECT guild_id, number, reason, moderator_id, replaced_at FROM case_reasons",
}


async def everything(target) -> dict[str, list[tuple]]:
    db = await Database.open(target)
    try:
        return {table: [tuple(row) for row in await db._store.fetch(query)] for table, query in TABLES.items()}
    finally:
        await db.close()


async def fill(path) -> None:
    """A database with rows in every table, over two guilds, including case reason history in order."""
    db = await Database.open(path)
    await db.add_xp(
        [XpGain(GUILD, user, user * 7, f"member {user}", 1_700_000_000 + user) for user in range(1, 12_001)]
    )
    await db.add_xp([XpGain(OTHER, 1, 50, "ünïcode ✓ '); DROP TABLE members;--", 5, 20)])
    await db.set_setting(GUILD, "prefix", "?")
    await db.set_setting(GUILD, "xp", "15-25")
    await db.set_setting(OTHER, "modlog", "987654321")
    await db.grant(GUILD, 1, "member 1", 500, "give", 9, "welcome")
    await db.transfer(GUILD, 1, 2, 120, from_name="member 1", to_name="member 2")
    await db.claim_daily(GUILD, 3, "member 3", 100, now=1_700_000_000)
    await db.take(GUILD, 1, 30, 9)
    await db.set_balance(GUILD, 2, "member 2", 7, 9, "reset")
    case = await db.open_case(GUILD, "warn", 4, "member 4", 9, "first")
    for reason in ("second", "third", "fourth"):
        await db.correct_reason(GUILD, case.number, reason, 9)
    await db.open_case(OTHER, "ban", 4, "member 4", 9, None)
    await db.close()


async def copy_data(env: dict[str, str], to: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        "copy-data",
        "--to",
        to,
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, output.decode()


async def test_sqlite_to_postgresql_and_back_keeps_every_row_and_verifies(storage, tmp_path):
    source = tmp_path / "source.db"
    await fill(source)
    code, output = await copy_data({"DATABASE_PATH": str(source)}, storage.url)
    assert code == 0, output
    assert "members" in output and "12,001/12,001 rows" in output and "rows/s" in output
    assert "copy verified" in output and "verified XP per guild" in output
    original = await everything(source)
    assert await everything(storage.url) == original

    back = tmp_path / "back.db"
    code, output = await copy_data({"DATABASE_URL": storage.url}, str(back))
    assert code == 0, output
    assert await everything(back) == original
    reasons = [row[2] for row in original["case_reasons"]]
    assert reasons == ["first", "second", "third"]  # the order of corrections survives both moves

    db = await Database.open(storage.url)  # the copied ledger goes on counting after the copied IDs
    await db.grant(GUILD, 5, "member 5", 1, "give", 9)
    assert (await db.movements(GUILD, 5))[0].id == max(row[0] for row in original["ledger"]) + 1
    await db.close()


async def test_a_target_that_already_holds_tally_data_is_refused_and_left_as_it_was(storage, tmp_path):
    source = tmp_path / "source.db"
    await fill(source)
    db = await Database.open(storage.url)
    await db.set_setting(OTHER, "prefix", "$")
    await db.close()
    code, output = await copy_data({"DATABASE_PATH": str(source)}, storage.url)
    assert code == 2
    assert "already holds Tally data" in output
    assert (await everything(storage.url))["guild_settings"] == [(OTHER, "prefix", "$")]


async def test_a_source_a_running_tally_uses_is_refused(storage, tmp_path):
    source = tmp_path / "source.db"
    await fill(source)
    running = await Database.open(source, exclusive=True)  # as the bot holds it
    try:
        code, output = await copy_data({"DATABASE_PATH": str(source)}, storage.url)
    finally:
        await running.close()
    assert code == 2
    assert "another Tally is using this database" in output
    assert (await everything(storage.url))["members"] == []


async def test_a_running_bot_on_a_postgresql_source_is_refused(storage, tmp_path):
    running = await Database.open(storage.url, exclusive=True)
    try:
        code, output = await copy_data({"DATABASE_URL": storage.url}, str(tmp_path / "back.db"))
    finally:
        await running.close()
    assert code == 2
    assert "a Tally bot is running on the source database" in output


async def test_a_copy_that_fails_midway_leaves_the_target_empty_and_the_source_untouched(storage, tmp_path):
    source = tmp_path / "source.db"
    await fill(source)
    conn = sqlite3.connect(source)
    conn.execute("INSERT INTO members VALUES (?, 99999, 'lots', 'odd', 0)", (OTHER,))  # SQLite lets text in
    conn.commit()
    conn.close()
    before = source.read_bytes()
    code, output = await copy_data({"DATABASE_PATH": str(source)}, storage.url)
    assert code == 1
    assert "the target was left empty and the source untouched" in output
    assert "Traceback" not in output
    assert all(rows == [] for rows in (await everything(storage.url)).values())
    assert source.read_bytes() == before


async def test_a_source_from_an_older_tally_is_refused_and_left_as_it_was(storage, tmp_path):
    source = tmp_path / "source.db"
    conn = sqlite3.connect(source, isolation_level=None)
    conn.executescript((ROOT / "tests" / "data" / "schema_v1.sql").read_text())
    conn.close()
    before = source.read_bytes()
    code, output = await copy_data({"DATABASE_PATH": str(source)}, storage.url)
    assert code == 2
    assert "is at schema version 1" in output and "start this Tally on it once" in output
    assert source.read_bytes() == before and not list(tmp_path.glob("*.bak"))  # no upgrade, no backup


async def test_a_mistyped_postgresql_target_is_refused_not_taken_for_a_file(storage, tmp_path):
    source = tmp_path / "source.db"
    await fill(source)
    code, output = await copy_data({"DATABASE_PATH": str(source)}, "postgresql:/127.0.0.1/tally")
    assert code == 2
    assert "DATABASE_URL" not in output and "postgresql://" in output
    assert not (tmp_path / "postgresql:").exists()


async def test_the_help_lists_the_subcommands_and_warns_to_stop_the_bot():
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bot.py"), "copy-data", "--help", stdout=asyncio.subprocess.PIPE
    )
    output, _ = await process.communicate()
    assert process.returncode == 0
    assert "Stop the bot first" in " ".join(output.decode().split())
