"""The SQL of ``python bot.py import``: a server's imported levels (and, from Tally's own export, the rest) in one transaction.

Every member whose XP the import changes gets one ``import`` entry in the
XP audit log. Everything lands in one transaction: a file that fails half
way changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from storage.audit import RECORD, _next_number
from storage.records import AuditEntry

# The stored XP of every member of the guild, locked until the transaction ends.
EVERY_MEMBER = {
    "sqlite": "SELECT user_id, xp FROM members WHERE guild_id = $1",
    "postgres": "SELECT user_id, xp FROM members WHERE guild_id = $1 ORDER BY user_id FOR UPDATE",
}
IMPORT_MEMBER = (
    "INSERT INTO members (guild_id, user_id, xp, name, first_seen) VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (guild_id, user_id) DO UPDATE SET xp = excluded.xp, "
    "name = CASE WHEN excluded.name = '' THEN members.name ELSE excluded.name END"
)
SET_SETTING = (
    "INSERT INTO guild_settings (guild_id, name, value) VALUES ($1, $2, $3) "
    "ON CONFLICT (guild_id, name) DO UPDATE SET value = excluded.value"
)
HAS_COINS_OR_CASES = (
    "SELECT EXISTS (SELECT 1 FROM wallets WHERE guild_id = $1) OR EXISTS (SELECT 1 FROM ledger WHERE guild_id = $1) "
    "OR EXISTS (SELECT 1 FROM cases WHERE guild_id = $1)"
)
WALLET = "INSERT INTO wallets (guild_id, user_id, coins, last_daily, name) VALUES ($1, $2, $3, $4, $5)"
MOVEMENT = (
    "INSERT INTO ledger (guild_id, from_id, to_id, amount, kind, actor_id, reason, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
CASE = (
    "INSERT INTO cases (guild_id, number, action, target_id, target_name, moderator_id, reason, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
CASE_REASON = (
    "INSERT INTO case_reasons (guild_id, number, reason, moderator_id, replaced_at) VALUES ($1, $2, $3, $4, $5)"
)
# A sync from the first member again: one a restart interrupted may already be past imported members.
QUEUE_SYNC = (
    "INSERT INTO reward_syncs (guild_id, channel_id, started_by, started_at) VALUES ($1, $2, 0, $3) "
    "ON CONFLICT (guild_id) DO UPDATE SET after_user = 0, done = 0, changed = 0, failed = 0"
)


class Imported(NamedTuple):
    """One member as a file gives them: the XP to apply by the import's mode, the name and first sighting if known."""

    user_id: int
    xp: int
    name: str = ""
    first_seen: int | None = None


class Extras(NamedTuple):
    """What only Tally's own export brings besides XP: rows for the tables as they are."""

    wallets: list[tuple]  # (user_id, coins, last_daily, name)
    ledger: list[tuple]  # (from_id, to_id, amount, kind, actor_id, reason, created_at)
    cases: list[tuple]  # (number, action, target_id, target_name, moderator_id, reason, created_at)
    case_reasons: list[tuple]  # (number, reason, moderator_id, replaced_at), in the order they were replaced


class ImportResult(NamedTuple):
    entries: list[AuditEntry]  # one per member whose XP changed
    extras_written: bool  # False: the server had coins or cases already, so the export's were left out


class ImportSQL:
    """Imports (mixed into db.Database)."""

    async def import_guild(
        self,
        guild_id: int,
        members: list[Imported],
        new_xp: Callable[[int, int], int],
        reason: str,
        *,
        settings: Mapping[str, str] | None = None,
        extras: Extras | None = None,
        sync_channel: int | None = None,
    ) -> ImportResult:
        """Write an import in one transaction; ``new_xp(current, imported)`` is the import's mode.

        ``settings`` are stored as they are; ``extras`` only when the server
        has no coins, ledger or cases yet. With ``sync_channel`` (the
        server has reward roles) a ``!rewards sync`` is queued: the bot runs
        it at its next start, posting its progress there (0: nowhere).
        """
        now = int(time.time())

        async def write(conn) -> ImportResult:
            number = await _next_number(conn, guild_id)
            stored = {row[0]: row[1] for row in await conn.fetch(EVERY_MEMBER[conn.dialect], guild_id)}
            rows, entries = [], []
            for member in sorted(members):
                before = stored.get(member.user_id, 0)
                after = new_xp(before, member.xp)
                if after == before and member.user_id in stored:
                    continue
                first_seen = member.first_seen if member.first_seen is not None else now
                rows.append((guild_id, member.user_id, after, member.name, first_seen))
                if after != before:
                    entries.append(
                        AuditEntry(
                            number + len(entries), member.user_id, None, "import", before, after, reason, now, None
                        )
                    )
            await conn.executemany(IMPORT_MEMBER, rows)
            await conn.executemany(RECORD, [(guild_id, *entry[:8]) for entry in entries])
            for name, value in (settings or {}).items():
                await conn.execute(SET_SETTING, guild_id, name, value)
            written = False
            if extras is not None and not await conn.fetchval(HAS_COINS_OR_CASES, guild_id):
                await conn.executemany(WALLET, [(guild_id, *row) for row in extras.wallets])
                await conn.executemany(MOVEMENT, [(guild_id, *row) for row in extras.ledger])
                await conn.executemany(CASE, [(guild_id, *row) for row in extras.cases])
                await conn.executemany(CASE_REASON, [(guild_id, *row) for row in extras.case_reasons])
                written = True
            if sync_channel is not None and entries:
                await conn.execute(QUEUE_SYNC, guild_id, sync_channel, now)
            return ImportResult(entries, written)

        return await self._store.write(write)
