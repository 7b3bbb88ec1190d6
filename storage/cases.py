"""The SQL for moderation cases and their reason history."""

from __future__ import annotations

import time

from storage.postgres import CASES
from storage.records import Case, OldReason

# A case's earlier reasons in the order they were replaced: SQLite's rowid,
# PostgreSQL's identity column (it has no rowid).
REASON_HISTORY = {
    "sqlite": "SELECT reason, moderator_id, replaced_at FROM case_reasons WHERE guild_id = $1 AND number = $2 "
    "ORDER BY rowid",
    "postgres": "SELECT reason, moderator_id, replaced_at FROM case_reasons WHERE guild_id = $1 AND number = $2 "
    "ORDER BY id",
}


class CasesSQL:
    """Moderation cases (mixed into db.Database)."""

    async def open_case(
        self, guild_id: int, action: str, target_id: int, target_name: str, moderator_id: int, reason: str | None
    ) -> Case:
        """Record a case under the guild's next case number: unique and gap-free per guild.

        The number is chosen and taken by one statement. On SQLite one writer
        at a time makes that enough; on PostgreSQL two processes could read the
        same MAX under READ COMMITTED, so each first takes the guild's
        transaction-scoped advisory lock and they take turns (two guilds may
        share a lock number: then they take turns too, which is harmless).
        """
        created_at = int(time.time())

        async def open_(conn):
            if conn.dialect == "postgres":  # (CASES, a number per guild): see storage/postgres.py
                await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", CASES, guild_id % 2_147_483_647)
            return await conn.fetchval(
                "INSERT INTO cases (guild_id, number, action, target_id, target_name, moderator_id, reason, created_at) "
                "SELECT $1, COALESCE(MAX(number), 0) + 1, $2, $3, $4, $5, $6, $7 FROM cases WHERE guild_id = $1 "
                "RETURNING number",
                guild_id,
                action,
                target_id,
                target_name,
                moderator_id,
                reason,
                created_at,
            )

        number = await self._store.write(open_)
        return Case(number, action, target_id, target_name, moderator_id, reason, created_at)

    async def case(self, guild_id: int, number: int) -> Case | None:
        row = await self._store.fetchrow(
            "SELECT number, action, target_id, target_name, moderator_id, reason, created_at FROM cases "
            "WHERE guild_id = $1 AND number = $2",
            guild_id,
            number,
        )
        return Case(*row) if row else None

    async def cases_of(self, guild_id: int, target_id: int, offset: int, limit: int) -> tuple[int, list[Case]]:
        """How many cases a member has, and one page of them, newest first."""
        count = await self._store.fetchval(
            "SELECT COUNT(*) FROM cases WHERE guild_id = $1 AND target_id = $2", guild_id, target_id
        )
        rows = await self._store.fetch(
            "SELECT number, action, target_id, target_name, moderator_id, reason, created_at FROM cases "
            "WHERE guild_id = $1 AND target_id = $2 ORDER BY number DESC LIMIT $3 OFFSET $4",
            guild_id,
            target_id,
            limit,
            offset,
        )
        return count, [Case(*row) for row in rows]

    async def correct_reason(self, guild_id: int, number: int, reason: str, moderator_id: int) -> Case | None:
        """Replace a case's reason, keeping the earlier one in its history.

        The case is locked first (a no-op update), so two corrections at once
        each keep the reason the other replaced.
        """

        async def correct(conn):
            if not await conn.execute(
                "UPDATE cases SET number = number WHERE guild_id = $1 AND number = $2", guild_id, number
            ):
                return False
            await conn.execute(
                "INSERT INTO case_reasons (guild_id, number, reason, moderator_id, replaced_at) "
                "SELECT guild_id, number, reason, $3, $4 FROM cases WHERE guild_id = $1 AND number = $2",
                guild_id,
                number,
                moderator_id,
                int(time.time()),
            )
            await conn.execute(
                "UPDATE cases SET reason = $3 WHERE guild_id = $1 AND number = $2", guild_id, number, reason
            )
            return True

        if not await self._store.write(correct):
            return None
        return await self.case(guild_id, number)

    async def reason_history(self, guild_id: int, number: int) -> list[OldReason]:
        """A case's earlier reasons, oldest first."""
        rows = await self._store.fetch(REASON_HISTORY[self._store.dialect], guild_id, number)
        return [OldReason(*row) for row in rows]
