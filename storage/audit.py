"""The SQL for XP changes that are not chat: admin commands, resets, imports, each in the audit log.

A change writes the members' new XP and one audit row per member changed in
one transaction, so the log explains every XP total that chat did not earn.
Audit rows are numbered 1, 2, 3 ... per guild (``!xp undo`` takes a number);
on PostgreSQL a guild's numbering is one transaction at a time (an advisory
lock), and the members' rows are locked before they are read, so a flush
from another process waits rather than being overwritten.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from storage.postgres import AUDIT
from storage.records import AuditEntry, CannotUndo

MAX_XP = 10**12  # no member holds more: far beyond any real server, far inside a 64-bit integer

ENTRY = (
    "SELECT number, user_id, actor_id, kind, xp_before, xp_after, reason, created_at, undone_by FROM xp_audit "
    "WHERE guild_id = $1 AND number = $2"
)
HISTORY = (
    "SELECT number, user_id, actor_id, kind, xp_before, xp_after, reason, created_at, undone_by FROM xp_audit "
    "WHERE guild_id = $1 AND user_id = $2 ORDER BY number DESC LIMIT $3 OFFSET $4"
)

# The stored XP of some members, or of every member with XP, locked until the transaction ends.
SOME_MEMBERS = {
    "sqlite": "SELECT user_id, xp FROM members WHERE guild_id = $1 AND user_id IN (SELECT value FROM json_each($2))",
    "postgres": "SELECT user_id, xp FROM members WHERE guild_id = $1 AND user_id = ANY($2::bigint[]) "
    "ORDER BY user_id FOR UPDATE",
}
EVERY_MEMBER = {
    "sqlite": "SELECT user_id, xp FROM members WHERE guild_id = $1 AND xp > 0",
    "postgres": "SELECT user_id, xp FROM members WHERE guild_id = $1 AND xp > 0 ORDER BY user_id FOR UPDATE",
}
SET_XP = (
    "INSERT INTO members (guild_id, user_id, xp, name, first_seen) VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (guild_id, user_id) DO UPDATE SET xp = excluded.xp"
)
RECORD = (
    "INSERT INTO xp_audit (guild_id, number, user_id, actor_id, kind, xp_before, xp_after, reason, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)


def new_xp(kind: str, before: int, amount: int) -> int:
    """A member's XP after a change of ``kind`` by ``amount`` (taking stops at 0, giving at MAX_XP)."""
    if kind == "give":
        return min(before + amount, MAX_XP)
    if kind == "take":
        return max(before - amount, 0)
    return amount  # set, reset (amount 0), import


class AuditSQL:
    """XP changes that are not chat, and their audit log (mixed into db.Database)."""

    async def change_xp(
        self,
        guild_id: int,
        kind: str,
        members: Mapping[int, str] | None,
        amount: int,
        actor_id: int | None,
        reason: str | None,
    ) -> list[AuditEntry]:
        """Change members' stored XP and log each change; the log entries, in user ID order.

        ``members``: user ID to display name (kept for members new to the
        table); None means every member with XP (``reset-server``). Members the
        change leaves as they were get no entry. Pending chat XP must be
        written first (XpTracker.change does that), or it would be lost to a set.
        """
        now = int(time.time())

        async def change(conn) -> list[AuditEntry]:
            number = await _next_number(conn, guild_id)
            if members is None:
                rows = await conn.fetch(EVERY_MEMBER[conn.dialect], guild_id)
            else:
                ids = sorted(members)
                rows = await conn.fetch(SOME_MEMBERS[conn.dialect], guild_id, _ids(conn, ids))
            stored = {row[0]: row[1] for row in rows}
            entries = []
            for user_id in sorted(stored if members is None else members):
                before = stored.get(user_id, 0)
                after = new_xp(kind, before, amount)
                if after != before:
                    entries.append(
                        AuditEntry(number + len(entries), user_id, actor_id, kind, before, after, reason, now, None)
                    )
            names = members or {}
            await conn.executemany(
                SET_XP, [(guild_id, e.user_id, e.xp_after, names.get(e.user_id, ""), now) for e in entries]
            )
            await conn.executemany(RECORD, [(guild_id, *e[:8]) for e in entries])
            return entries

        return await self._store.write(change)

    async def undo_xp(self, guild_id: int, number: int, actor_id: int) -> AuditEntry:
        """Revert change ``number``: the member's XP goes back to what it was before it.

        Only while nothing has changed the member's XP since: no later change
        that still stands, and the stored XP is still what the change left
        (pending chat XP written first, as for ``change_xp``). Raises
        CannotUndo otherwise. Returns the undo's own entry (``reason``: "undo of #N").
        """
        now = int(time.time())

        async def undo(conn) -> AuditEntry:
            following = await _next_number(conn, guild_id)
            row = await conn.fetchrow(ENTRY, guild_id, number)
            if row is None:
                raise CannotUndo("missing")
            entry = AuditEntry(*row)
            if entry.undone_by is not None:
                raise CannotUndo("undone", entry)
            if entry.kind == "undo":
                raise CannotUndo("undo", entry)
            later = await conn.fetchval(
                "SELECT MAX(number) FROM xp_audit WHERE guild_id = $1 AND user_id = $2 AND number > $3 "
                "AND undone_by IS NULL AND kind <> 'undo'",
                guild_id,
                entry.user_id,
                number,
            )
            if later is not None:
                raise CannotUndo("later", entry, later=later)
            rows = await conn.fetch(SOME_MEMBERS[conn.dialect], guild_id, _ids(conn, [entry.user_id]))
            xp_now = rows[0][1] if rows else 0
            if xp_now != entry.xp_after:
                raise CannotUndo("earned", entry, xp_now=xp_now)
            reverted = AuditEntry(
                following, entry.user_id, actor_id, "undo", xp_now, entry.xp_before, f"undo of #{number}", now, None
            )
            await conn.execute(SET_XP, guild_id, entry.user_id, entry.xp_before, "", now)
            await conn.execute(RECORD, guild_id, *reverted[:8])
            await conn.execute(
                "UPDATE xp_audit SET undone_by = $3 WHERE guild_id = $1 AND number = $2", guild_id, number, following
            )
            return reverted

        return await self._store.write(undo)

    async def xp_history(self, guild_id: int, user_id: int, offset: int, limit: int) -> tuple[int, list[AuditEntry]]:
        """How many audit entries a member has, and one page of them, newest first."""
        count = await self._store.fetchval(
            "SELECT COUNT(*) FROM xp_audit WHERE guild_id = $1 AND user_id = $2", guild_id, user_id
        )
        rows = await self._store.fetch(HISTORY, guild_id, user_id, limit, offset)
        return count, [AuditEntry(*row) for row in rows]


async def _next_number(conn, guild_id: int) -> int:
    """The guild's next audit number; on PostgreSQL the guild's numbering is this transaction's until it ends."""
    if conn.dialect == "postgres":
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", AUDIT, guild_id % 2_147_483_647)
    return await conn.fetchval("SELECT COALESCE(MAX(number), 0) + 1 FROM xp_audit WHERE guild_id = $1", guild_id)


def _ids(conn, user_ids: list[int]):
    """User IDs as one parameter: a JSON array for SQLite, an array for PostgreSQL (the query stays fixed)."""
    return json.dumps(user_ids) if conn.dialect == "sqlite" else user_ids
