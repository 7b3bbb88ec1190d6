"""The schema stands twice per backend (the whole schema, and the migrations): they must agree exactly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg

from storage import postgres, sqlite

DATA = Path(__file__).parent / "data"


async def definitions(storage) -> dict[str, str]:
    db = await storage.open()
    try:
        async with db.transaction() as conn:
            module = postgres if db.dialect == "postgres" else sqlite
            return await module.schema_definitions(conn)
    finally:
        await db.close()


async def make_version_1(storage) -> None:
    """A database as the foundation's Tally left it (tests/data/schema_v1*.sql)."""
    if storage.backend == "sqlite":
        path = storage.folder / "data" / "tally.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.executescript((DATA / "schema_v1.sql").read_text())
        conn.close()
    else:
        conn = await asyncpg.connect(storage.url)
        await conn.execute((DATA / "schema_v1_postgres.sql").read_text())
        await conn.close()


async def test_a_fresh_database_and_one_upgraded_from_version_1_have_exactly_the_same_schema(storage):
    upgraded = await storage.sibling("upgraded")
    await make_version_1(upgraded)
    fresh, migrated = await definitions(storage), await definitions(upgraded)
    assert migrated == fresh  # types, defaults, keys, CHECKs, indexes and the version
    assert any("CHECK" in definition.upper() and "coins >= 0" in definition for definition in fresh.values())


async def test_the_schema_report_catches_a_changed_check(storage):
    """The comparison above would see a drift: a CHECK changed in one place only."""
    changed = await storage.sibling("changed")
    db = await changed.open()
    await db.close()
    before = await definitions(changed)
    db = await changed.open()
    async with db.transaction() as conn:
        if db.dialect == "postgres":
            await conn.execute("ALTER TABLE wallets DROP CONSTRAINT wallets_coins_check")
            await conn.execute("ALTER TABLE wallets ADD CONSTRAINT wallets_coins_check CHECK (coins >= -1)")
        else:
            await conn.execute("PRAGMA writable_schema = ON")
            await conn.execute(
                "UPDATE sqlite_master SET sql = replace(sql, 'coins >= 0', 'coins >= -1') WHERE name = 'wallets'"
            )
            await conn.execute("PRAGMA writable_schema = OFF")
    await db.close()
    assert await definitions(changed) != before


async def test_an_upgrade_from_version_2_keeps_prefixes_and_modlog_channels_as_settings(storage):
    await make_version_1(storage)
    folder = Path(__file__).parent.parent / "migrations" / storage.backend
    version_2 = (folder / "0002_coins_and_cases.sql").read_text()
    rows = [
        "INSERT INTO guild_settings (guild_id, prefix) VALUES (1, '?'), (2, ';--')",
        "INSERT INTO modlog_channels (guild_id, channel_id) VALUES (2, 9007199254740993)",  # past a float's precision
    ]
    if storage.backend == "sqlite":
        conn = sqlite3.connect(storage.folder / "data" / "tally.db", isolation_level=None)
        conn.executescript(version_2)
        for row in rows:
            conn.execute(row)
        conn.close()
    else:
        conn = await asyncpg.connect(storage.url)
        async with conn.transaction():
            await conn.execute(version_2)
        for row in rows:
            await conn.execute(row)
        await conn.close()
    db = await storage.open()
    try:
        assert await db.stored_settings() == {1: {"prefix": "?"}, 2: {"prefix": ";--", "modlog": "9007199254740993"}}
    finally:
        await db.close()
