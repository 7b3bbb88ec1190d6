"""The SQLite file itself: schema checks, upgrades, backups, refusals, the one-process lock, kept XP."""

from __future__ import annotations

import ast
import logging
import re
import sqlite3
from pathlib import Path

import pytest

from db import SCHEMA_VERSION, Database, DatabaseRefused, Unsaved, XpGain
from storage.sqlite import SCHEMA_PATH
from tests.conftest import ROOT

GUILD = 111111111111111111


def sqlite_file(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


async def test_a_new_file_gets_the_whole_schema_and_its_version(tmp_path):
    path = tmp_path / "nested" / "folder" / "tally.db"
    db = await Database.open(path)
    await db.close()
    assert user_version(path) == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {"guild_settings", "members"} <= names


async def test_connection_uses_wal_and_foreign_keys(tmp_path):
    db = await Database.open(tmp_path / "tally.db")
    assert await db._store.fetchval("PRAGMA journal_mode") == "wal"
    assert await db._store.fetchval("PRAGMA foreign_keys") == 1
    await db.close()


async def test_reopening_a_current_file_keeps_its_data(tmp_path):
    path = tmp_path / "tally.db"
    db = await Database.open(path)
    await db.set_setting(GUILD, "prefix", "?")
    await db.close()
    db = await Database.open(path)
    assert await db.stored_settings() == {GUILD: {"prefix": "?"}}
    await db.close()


async def test_a_file_from_a_newer_tally_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "tally.db"
    sqlite_file(path, "CREATE TABLE future (x)", f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(DatabaseRefused, match="newer Tally"):
        await Database.open(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tally.db"]


async def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "tally.db"
    path.write_text("these are my notes, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(DatabaseRefused, match="not a SQLite database"):
        await Database.open(path)
    assert path.read_bytes() == before


async def test_an_unrecognizable_sqlite_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "database.db"  # the seed tutorial's own file
    sqlite_file(path, "CREATE TABLE users (user_id INTEGER PRIMARY KEY, xp INTEGER DEFAULT 0, level INTEGER)")
    before = path.read_bytes()
    with pytest.raises(DatabaseRefused, match="tables Tally did not create \\(users\\)"):
        await Database.open(path)
    assert path.read_bytes() == before


async def test_a_damaged_schema_is_refused_naming_what_is_missing(tmp_path):
    path = tmp_path / "tally.db"
    db = await Database.open(path)
    await db.close()
    sqlite_file(path, "ALTER TABLE members DROP COLUMN first_seen")
    with pytest.raises(DatabaseRefused, match="lacks column members.first_seen"):
        await Database.open(path)


async def a_closed_file_of_3000_members(path: Path) -> None:
    db = await Database.open(path)
    await db.add_xp([XpGain(GUILD, user, user, f"member {user}", 0) for user in range(1, 3001)])
    await db.close()


async def test_a_file_as_tally_closed_it_is_opened_without_checking_every_page_again(tmp_path, caplog):
    path = tmp_path / "tally.db"
    await a_closed_file_of_3000_members(path)
    with caplog.at_level(logging.DEBUG, logger="storage.sqlite"):
        db = await Database.open(path)
    assert "as Tally closed it: its pages are not checked again" in caplog.text
    assert not (tmp_path / "tally.db.closed").exists()  # used once: a stop that is not clean leaves none
    assert await db.member_xp(GUILD, 3000) == 3000
    await db.close()


async def test_a_file_changed_after_tally_closed_it_is_checked_again_and_a_damaged_page_refused(tmp_path, caplog):
    path = tmp_path / "tally.db"
    await a_closed_file_of_3000_members(path)
    with open(path, "r+b") as file:  # a byte editor's work: garbage over a page of the members table
        file.seek(10 * 4096)
        file.write(b"\xff" * 64)
    with caplog.at_level(logging.DEBUG, logger="storage.sqlite"), pytest.raises(DatabaseRefused, match="is damaged"):
        await Database.open(path)
    assert "not checked again" not in caplog.text


# A made-up next version, to exercise the upgrade machinery itself.
NEXT = SCHEMA_VERSION + 1
NEXT_SCHEMA = SCHEMA_PATH.read_text().replace(
    f"PRAGMA user_version = {SCHEMA_VERSION};",
    f"ALTER TABLE members ADD COLUMN note TEXT;\nPRAGMA user_version = {NEXT};",
)
NEXT_MIGRATIONS = {
    SCHEMA_VERSION: f"BEGIN; ALTER TABLE members ADD COLUMN note TEXT; PRAGMA user_version = {NEXT}; COMMIT;"
}


async def test_an_older_file_is_backed_up_then_upgraded_keeping_its_data(tmp_path):
    path = tmp_path / "tally.db"
    db = await Database.open(path)  # a file of the current version
    await db.add_xp([XpGain(GUILD, 42, 150, "alice", 0)])
    await db.close()
    schema = tmp_path / "schema_next.sql"
    schema.write_text(NEXT_SCHEMA)

    db = await Database.open(path, schema_path=schema, schema_version=NEXT, migrations=NEXT_MIGRATIONS)
    assert await db.member_xp(GUILD, 42) == 150
    await db.close()

    assert user_version(path) == NEXT
    backups = list(tmp_path.glob(f"tally.db.v{SCHEMA_VERSION}-*.bak"))
    assert len(backups) == 1
    assert user_version(backups[0]) == SCHEMA_VERSION
    conn = sqlite3.connect(backups[0])
    assert conn.execute("SELECT xp FROM members").fetchall() == [(150,)]
    conn.close()


async def test_a_failing_migration_rolls_back_to_the_old_version(tmp_path):
    path = tmp_path / "tally.db"
    db = await Database.open(path)
    await db.close()
    schema = tmp_path / "schema_next.sql"
    schema.write_text(NEXT_SCHEMA)
    broken = {
        SCHEMA_VERSION: f"BEGIN; ALTER TABLE members ADD COLUMN note TEXT; PRAGMA user_version = {NEXT}; NOT SQL; COMMIT;"
    }
    with pytest.raises(sqlite3.OperationalError):
        await Database.open(path, schema_path=schema, schema_version=NEXT, migrations=broken)
    assert user_version(path) == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(members)")}
    conn.close()
    assert "note" not in columns


async def test_an_older_file_without_an_upgrade_path_is_refused(tmp_path):
    path = tmp_path / "tally.db"
    db = await Database.open(path)
    await db.close()
    schema = tmp_path / "schema_next.sql"
    schema.write_text(NEXT_SCHEMA)
    with pytest.raises(DatabaseRefused, match=f"no upgrade from version {SCHEMA_VERSION}"):
        await Database.open(path, schema_path=schema, schema_version=NEXT, migrations={})
    assert user_version(path) == SCHEMA_VERSION


async def test_a_foundation_database_is_upgraded_to_coins_and_cases_keeping_everything(tmp_path):
    """The real migration, on a file made by the previous version's schema (tests/data/schema_v1.sql)."""
    path = tmp_path / "tally.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript((Path(__file__).parent / "data" / "schema_v1.sql").read_text())
    conn.execute("INSERT INTO members VALUES (?, ?, ?, ?, ?)", (GUILD, 42, 250, "alice", 1700000000))
    conn.execute("INSERT INTO guild_settings VALUES (?, ?)", (GUILD, "?"))
    conn.close()
    assert user_version(path) == 1

    db = await Database.open(path)
    assert await db.member_xp(GUILD, 42) == 250
    assert await db.stored_settings() == {GUILD: {"prefix": "?"}}
    assert await db.balance(GUILD, 42) == 0
    await db.close()
    assert user_version(path) == SCHEMA_VERSION
    assert len(list(tmp_path.glob("tally.db.v1-*.bak"))) == 1


async def test_xp_a_shutdown_could_not_write_is_kept_and_added_once_at_the_next_start(tmp_path):
    path = tmp_path / "tally.db"
    db = await Database.open(path, exclusive=True)
    first = db.keep_unsaved([Unsaved(1, [XpGain(GUILD, 1, 10, "alice", 0, 5)])])
    (tmp_path / f"{first.name}.partial").write_text("[[")  # a write that a crash cut short is never read
    await db.close()
    db = await Database.open(path, exclusive=True)
    second = db.keep_unsaved(
        [Unsaved(2, [XpGain(GUILD, 1, 3, "alice", 0)]), Unsaved(3, [XpGain(GUILD, 2, 7, "bob", 0)])]
    )
    await db.close()
    assert first.name.startswith("tally.db.unsaved-") and first.exists() is False  # the second start added it
    assert second.exists()

    other = await Database.open(path)  # a tool's connection leaves the files to the bot
    assert sorted(await other.guild_xp(GUILD)) == [(1, 10)]
    await other.close()

    db = await Database.open(path, exclusive=True)
    assert sorted(await db.guild_xp(GUILD)) == [(1, 13), (2, 7)]
    assert await db.balance(GUILD, 1) == 5
    assert db.unsaved_files() == []
    await db.close()
    db = await Database.open(path, exclusive=True)  # added once, not at every start
    assert sorted(await db.guild_xp(GUILD)) == [(1, 13), (2, 7)]
    await db.close()


async def test_a_file_of_unsaved_xp_from_before_flush_ids_is_still_added(tmp_path):
    kept = tmp_path / "tally.db.unsaved-20260101-000000-1.json"
    kept.write_text(f'[[{GUILD}, 1, 10, "alice", 0, 5], [{GUILD}, 2, 4, "bob", 0, 0]]')  # issue 11's format
    db = await Database.open(tmp_path / "tally.db", exclusive=True)
    assert sorted(await db.guild_xp(GUILD)) == [(1, 10), (2, 4)]
    assert await db.balance(GUILD, 1) == 5
    await db.close()
    assert not kept.exists()


@pytest.mark.parametrize("content", ["[[1, 2", "", "{}", None, "[[0, []]]"])
async def test_an_unreadable_unsaved_xp_file_is_left_alone_and_start_up_goes_on(tmp_path, caplog, content):
    path = tmp_path / "tally.db"
    kept = tmp_path / "tally.db.unsaved-20260101-000000-1.json"
    if content is None:
        kept.mkdir()  # not even a file
    else:
        kept.write_text(content)
    db = await Database.open(path, exclusive=True)
    assert await db.guild_xp(GUILD) == []
    await db.close()
    assert kept.exists()
    assert "cannot read" in caplog.text and "fix or remove it" in caplog.text


async def test_a_second_exclusive_open_of_one_file_is_refused_naming_the_first_process(tmp_path):
    import os

    path = tmp_path / "tally.db"
    first = await Database.open(path, exclusive=True)
    with pytest.raises(DatabaseRefused, match=f"another Tally is using this database \\(pid {os.getpid()}\\)"):
        await Database.open(tmp_path / "." / "tally.db", exclusive=True)
    await first.close()
    second = await Database.open(path, exclusive=True)  # released at close
    await second.close()


# What SQLite added after 3.35 (the oldest Tally supports), as it would appear in SQL text.
NEWER_THAN_3_35 = {
    "->": "the -> and ->> operators (3.38)",
    "unixepoch(": "unixepoch() (3.38)",
    "right join": "RIGHT JOIN (3.39)",
    "full join": "FULL JOIN (3.39)",
    "full outer join": "FULL OUTER JOIN (3.39)",
    ") strict": "STRICT tables (3.37)",
    "octet_length(": "octet_length() (3.43)",
    "concat(": "concat() (3.44)",
    "concat_ws(": "concat_ws() (3.44)",
    "timediff(": "timediff() (3.43)",
    "json_pretty(": "json_pretty() (3.46)",
    "jsonb": "JSONB (3.45)",
    "is distinct from": "IS DISTINCT FROM (3.39)",
}
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA|WITH)\b")


def sql_texts() -> list[tuple[str, str]]:
    """Every SQL statement Tally's code and scripts hold: (where, text); a constant named ``*_POSTGRES``
    is marked ``(PostgreSQL's)`` in its where."""
    found = []
    for path in sorted(ROOT.glob("*.py")) + sorted((ROOT / "storage").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        postgres_only = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and any(isinstance(target, ast.Name) and target.id.endswith("_POSTGRES") for target in node.targets)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                mark = " (PostgreSQL's)" if id(node) in postgres_only else ""
                found.append((f"{path.name}:{node.lineno}{mark}", node.value))
    for path in [ROOT / "schema.sql", *sorted((ROOT / "migrations" / "sqlite").glob("*.sql"))]:
        found.append((path.name, path.read_text(encoding="utf-8")))
    return found


def test_the_sql_needs_nothing_newer_than_sqlite_3_35():
    texts = sql_texts()
    assert len(texts) > 50  # the scan sees the statements
    problems = [
        f"{where}: {feature}"
        for where, text in texts
        for token, feature in NEWER_THAN_3_35.items()
        if token in " ".join(text.lower().split())
    ]
    postgres_only = ("postgres.py", "0002_coins_and_cases.sql")  # PostgreSQL's own statements are not SQLite's
    assert [p for p in problems if not p.startswith(postgres_only) and "(PostgreSQL's)" not in p] == []
    assert any("levels.py" in where and "(PostgreSQL's)" in where for where, _ in texts)  # the mark is seen


async def test_an_older_sqlite_than_tally_needs_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(
        DatabaseRefused, match=r"this Python uses SQLite 3\.31\.1; Tally needs SQLite 3\.35\.0 or newer"
    ):
        await Database.open(tmp_path / "tally.db")
    assert not (tmp_path / "tally.db").exists()
