"""Small helpers for end-to-end tests: seeding the bot's database and reading its posts."""

from __future__ import annotations

from db import XpGain
from tests.conftest import Storage


async def seed_xp(storage: Storage, guild_id: int, rows: list[tuple[int, int, str]]) -> None:
    """Store ``(user_id, xp, name)`` rows in the database the bot will open."""
    db = await storage.open()
    await db.add_xp([XpGain(guild_id, user_id, xp, name, 0) for user_id, xp, name in rows])
    await db.close()


def field(post, name: str) -> str:
    """The value of the named embed field in a post."""
    for embed in post.embeds:
        for f in embed.get("fields", []):
            if f["name"] == name or f["name"].startswith(name):
                return f["value"]
    raise AssertionError(f"no field {name!r} in {post.embeds}")
