"""The SQL for per-guild settings: the command prefix and the mod-log channel."""

from __future__ import annotations


class SettingsSQL:
    """Per-guild settings (mixed into db.Database)."""

    async def prefixes(self) -> dict[int, str]:
        """Every guild's custom prefix (guilds on the default have no entry)."""
        rows = await self._store.fetch("SELECT guild_id, prefix FROM guild_settings")
        return {row[0]: row[1] for row in rows}

    async def set_prefix(self, guild_id: int, prefix: str) -> None:
        await self._store.execute(
            "INSERT INTO guild_settings (guild_id, prefix) VALUES ($1, $2) "
            "ON CONFLICT (guild_id) DO UPDATE SET prefix = excluded.prefix",
            guild_id,
            prefix,
        )

    async def reset_prefix(self, guild_id: int) -> None:
        await self._store.execute("DELETE FROM guild_settings WHERE guild_id = $1", guild_id)

    async def modlog_channel(self, guild_id: int) -> int | None:
        return await self._store.fetchval("SELECT channel_id FROM modlog_channels WHERE guild_id = $1", guild_id)

    async def set_modlog_channel(self, guild_id: int, channel_id: int | None) -> None:
        if channel_id is None:
            await self._store.execute("DELETE FROM modlog_channels WHERE guild_id = $1", guild_id)
        else:
            await self._store.execute(
                "INSERT INTO modlog_channels (guild_id, channel_id) VALUES ($1, $2) "
                "ON CONFLICT (guild_id) DO UPDATE SET channel_id = excluded.channel_id",
                guild_id,
                channel_id,
            )
