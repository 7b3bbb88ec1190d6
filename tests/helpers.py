"""Small helpers for end-to-end tests: seeding and reading the bot's database file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from db import Database, XpGain


async def seed_xp(folder: Path, guild_id: int, rows: list[tuple[int, int, str]]) -> None:
    """Store ``(user_id, xp, name)`` rows in the file the bot will open (data/tally.db)."""
    db = await Database.open(folder / "data" / "tally.db")
    await db.add_xp([XpGain(guild_id, user_id, xp, name, 0) for user_id, xp, name in rows])
    await db.close()


def stored(folder: Path, query: str, *params) -> list[tuple]:
    conn = sqlite3.connect(folder / "data" / "tally.db")
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def stored_xp(folder: Path, guild_id: int) -> dict[int, int]:
    return dict(stored(folder, "SELECT user_id, xp FROM members WHERE guild_id = ?", guild_id))


def field(post, name: str) -> str:
    """The value of the named embed field in a post."""
    for embed in post.embeds:
        for f in embed.get("fields", []):
            if f["name"] == name or f["name"].startswith(name):
                return f["value"]
    raise AssertionError(f"no field {name!r} in {post.embeds}")
