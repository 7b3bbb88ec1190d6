"""The SQL for role rewards: the state of each guild's running ``!rewards sync``.

The rewards themselves are a per-guild setting (storage/settings.py); what
lives here is how far a sync got, written as it goes, so that a restart
picks it up where it stopped.
"""

from __future__ import annotations

from storage.records import SyncState

SELECT_SYNCS = (
    "SELECT guild_id, channel_id, message_id, started_by, after_user, done, changed, failed, started_at "
    "FROM reward_syncs"
)


class RewardsSQL:
    """Role reward syncs (mixed into db.Database)."""

    async def start_sync(self, guild_id: int, channel_id: int, started_by: int, now: int) -> SyncState | None:
        """Record a new sync; None when the guild has one running already (one at a time)."""
        row = await self._store.fetchrow(
            "INSERT INTO reward_syncs (guild_id, channel_id, started_by, started_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (guild_id) DO NOTHING "
            "RETURNING guild_id, channel_id, message_id, started_by, after_user, done, changed, failed, started_at",
            guild_id,
            channel_id,
            started_by,
            now,
        )
        return SyncState(*row) if row else None

    async def sync_of(self, guild_id: int) -> SyncState | None:
        row = await self._store.fetchrow(
            "SELECT guild_id, channel_id, message_id, started_by, after_user, done, changed, failed, started_at "
            "FROM reward_syncs WHERE guild_id = $1",
            guild_id,
        )
        return SyncState(*row) if row else None

    async def syncs(self) -> list[SyncState]:
        """Every sync that has not finished (to resume after a restart)."""
        return [SyncState(*row) for row in await self._store.fetch(SELECT_SYNCS)]

    async def save_sync(self, state: SyncState) -> None:
        """How far a sync got, and its progress message."""
        await self._store.execute(
            "UPDATE reward_syncs SET message_id = $2, after_user = $3, done = $4, changed = $5, failed = $6 "
            "WHERE guild_id = $1",
            state.guild_id,
            state.message_id,
            state.after_user,
            state.done,
            state.changed,
            state.failed,
        )

    async def end_sync(self, guild_id: int) -> None:
        await self._store.execute("DELETE FROM reward_syncs WHERE guild_id = $1", guild_id)
