"""The SQL for XP: the write-behind flush, a guild's board, one member, names."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from array import array
from collections.abc import Iterable
from operator import itemgetter

from storage.records import Standing, XpGain

FLUSH_IDS_KEPT_MS = 3 * 86400 * 1000
_first, _second = itemgetter(0), itemgetter(1)


def new_flush_id() -> int:
    """A flush ID: milliseconds since the epoch, then 20 random bits (so IDs expire in order)."""
    return (int(time.time() * 1000) << 20) | secrets.randbits(20)


# The flush: every pending gain added (never overwritten: another process may
# have added too) in one round trip, with the level-up coins and their ledger
# rows. Both dialects take the batch as one JSON array of rows, encoded in a worker
# thread, but unpack it differently, so the statement stands twice.

# PostgreSQL: one statement (data-modifying CTEs), the gains as one JSON array of rows
# (one text parameter: asyncpg encodes six arrays of 15,000 on the event loop, which
# stalled it 30-50 ms), and the batch's flush ID ($2): the gains count only if the ID is
# new, so a batch sent again after a try whose outcome was lost (a connection cut during
# COMMIT) adds nothing twice. IDs older than $3 (three days) are forgotten by the same statement.
ADD_XP_POSTGRES = """
WITH claim AS (
    INSERT INTO tally_flushes (id) VALUES ($2) ON CONFLICT (id) DO NOTHING RETURNING id
), expired AS (
    DELETE FROM tally_flushes WHERE id < $3
), gains AS (
    SELECT (g ->> 0)::bigint AS guild_id, (g ->> 1)::bigint AS user_id, (g ->> 2)::bigint AS xp,
        g ->> 3 AS name, (g ->> 4)::bigint AS seen_at, (g ->> 5)::bigint AS coins
    FROM json_array_elements($1::json) AS g
    WHERE EXISTS (SELECT FROM claim)
), xp AS (
    INSERT INTO members (guild_id, user_id, xp, name, first_seen)
    SELECT guild_id, user_id, xp, name, seen_at FROM gains
    ON CONFLICT (guild_id, user_id) DO UPDATE SET xp = members.xp + excluded.xp, name = excluded.name
), paid AS (
    INSERT INTO wallets (guild_id, user_id, coins, name)
    SELECT guild_id, user_id, coins, name FROM gains WHERE coins > 0
    ON CONFLICT (guild_id, user_id) DO UPDATE SET coins = wallets.coins + excluded.coins, name = excluded.name
)
INSERT INTO ledger (guild_id, from_id, to_id, amount, kind, actor_id, reason, created_at)
SELECT guild_id, NULL, user_id, coins, 'level_up', user_id, NULL, seen_at FROM gains WHERE coins > 0
"""

# SQLite: one JSON array that SQLite unpacks itself, one statement per table in one
# transaction. No flush ID: the file answers in this process, so a try's outcome is never lost.
# (json_extract rather than the ->> operator of SQLite 3.38: Tally runs on SQLite 3.35 and newer.)
ADD_XP_SQLITE = (
    "INSERT INTO members (guild_id, user_id, xp, name, first_seen) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
    "json_extract(value, '$[3]'), json_extract(value, '$[4]') FROM json_each($1) WHERE true "
    "ON CONFLICT (guild_id, user_id) DO UPDATE SET xp = members.xp + excluded.xp, name = excluded.name"
)
PAY_LEVEL_UPS_SQLITE = (
    "INSERT INTO wallets (guild_id, user_id, coins, name) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[5]'), "
    "json_extract(value, '$[3]') FROM json_each($1) WHERE json_extract(value, '$[5]') > 0 "
    "ON CONFLICT (guild_id, user_id) DO UPDATE SET coins = wallets.coins + excluded.coins, name = excluded.name"
)
LEDGER_LEVEL_UPS_SQLITE = (
    "INSERT INTO ledger (guild_id, from_id, to_id, amount, kind, actor_id, reason, created_at) "
    "SELECT json_extract(value, '$[0]'), NULL, json_extract(value, '$[1]'), json_extract(value, '$[5]'), "
    "'level_up', json_extract(value, '$[1]'), NULL, json_extract(value, '$[4]') "
    "FROM json_each($1) WHERE json_extract(value, '$[5]') > 0"
)

GUILD_XP = "SELECT user_id, xp FROM members WHERE guild_id = $1 AND xp > 0 ORDER BY user_id"

# A member's rank counted in the database (see standing): those with more XP, or as much and a lower user ID.
STANDING = (
    "SELECT COALESCE(SUM(CASE WHEN xp > $2 OR (xp = $2 AND user_id < $3) THEN 1 ELSE 0 END), 0), COUNT(*) "
    "FROM members WHERE guild_id = $1 AND xp > 0"
)

NAMES = {
    "sqlite": "SELECT user_id, name FROM members WHERE guild_id = $1 AND user_id IN (SELECT value FROM json_each($2))",
    "postgres": "SELECT user_id, name FROM members WHERE guild_id = $1 AND user_id = ANY($2::bigint[])",
}


class LevelsSQL:
    """XP and members (mixed into db.Database)."""

    async def add_xp(self, gains: Iterable[XpGain], flush_id: int | None = None) -> None:
        """Add every gain at once: one round trip, whatever the number of members.

        ``flush_id`` (see xp.new_flush_id) makes a batch count once however
        often it is sent; without one the batch gets a new ID.

        Level-up coins land with the XP that earned them, each with its ledger
        row (the member is its actor: they earned it). The batch is read,
        sorted and encoded in a worker thread (``gains`` may be a generator
        over data nothing changes meanwhile): 10,000 rows on the event loop
        would stall it.
        """
        payload, with_coins = await asyncio.to_thread(_json_rows, gains)
        if payload == "[]":
            return
        if self._store.dialect == "postgres":
            flush_id = new_flush_id() if flush_id is None else flush_id
            forget_before = (int(time.time() * 1000) - FLUSH_IDS_KEPT_MS) << 20
            await self._store.execute(ADD_XP_POSTGRES, payload, flush_id, forget_before)
            return

        async def add(conn):
            await conn.execute(ADD_XP_SQLITE, payload)
            if with_coins:
                await conn.execute(PAY_LEVEL_UPS_SQLITE, payload)
                await conn.execute(LEDGER_LEVEL_UPS_SQLITE, payload)

        await self._store.write(add)

    async def guild_xp(self, guild_id: int) -> list[tuple[int, int]]:
        """Every ``(user_id, xp)`` in the guild with XP (a reset member has none), by user ID."""
        return list(zip(*await self.guild_columns(guild_id), strict=True))

    async def guild_columns(self, guild_id: int) -> tuple[array, array]:
        """Every member of the guild with XP as two columns of 8-byte integers: user IDs ascending (the order
        the board keeps them in; free on SQLite, where the key is the row's address), and their XP.

        Read a page at a time into the columns: a million members never stand as a million Python tuples,
        whose making, and the garbage collector's full passes over them, would stall the event loop.
        """
        user_ids, xps = array("Q"), array("q")
        async for page in self._store.fetch_pages(GUILD_XP, guild_id):
            user_ids.extend(map(_first, page))
            xps.extend(map(_second, page))
        return user_ids, xps

    async def member_xp(self, guild_id: int, user_id: int) -> int:
        """The XP stored for one member (0 when there is no row)."""
        xp = await self._store.fetchval(
            "SELECT xp FROM members WHERE guild_id = $1 AND user_id = $2", guild_id, user_id
        )
        return xp or 0

    async def standing(self, guild_id: int, user_id: int, unsaved: int) -> Standing:
        """A member's standing counted in the database, for when their guild's board is not in memory.

        ``unsaved`` is the member's XP not written yet; other members' unsaved
        XP (a flush interval's worth) is not counted.
        """
        stored = await self.member_xp(guild_id, user_id)
        xp = stored + unsaved
        above, ranked = await self._store.fetchrow(STANDING, guild_id, xp, user_id)
        if xp <= 0:
            return Standing(xp, None, ranked)
        return Standing(xp, above + 1, ranked + (stored <= 0))

    async def names(self, guild_id: int, user_ids: Iterable[int]) -> dict[int, str]:
        """Last known names of the given members (the IDs travel as one array: the query stays fixed)."""
        user_ids = list(user_ids)
        ids = json.dumps(user_ids) if self._store.dialect == "sqlite" else user_ids
        rows = await self._store.fetch(NAMES[self._store.dialect], guild_id, ids)
        return {row[0]: row[1] for row in rows}

    async def first_seen(self, guild_id: int, user_id: int) -> int | None:
        return await self._store.fetchval(
            "SELECT first_seen FROM members WHERE guild_id = $1 AND user_id = $2", guild_id, user_id
        )


def _json_rows(gains: Iterable[XpGain], chunk: int = 500) -> tuple[str, bool]:
    """Gains as one JSON array, encoded in chunks; and whether any brings coins.

    Run in a worker thread: json.dumps holds the GIL for its whole call, so a
    single call over 10,000 rows would stall the event loop for ~20 ms, while
    chunks of 500 let the loop run between them.
    """
    gains = iter(sorted(gains))  # key order: two writers lock rows in the same order
    parts = []
    with_coins = False
    while batch := list(itertools.islice(gains, chunk)):
        parts.append(json.dumps(batch)[1:-1])
        with_coins = with_coins or any(gain.coins for gain in batch)
    return "[" + ",".join(parts) + "]", with_coins
