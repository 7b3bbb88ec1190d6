"""The SQL for per-guild settings: one row per setting a guild changed (server_settings.py reads them)."""

from __future__ import annotations


class SettingsSQL:
    """Per-guild settings (mixed into db.Database)."""

    async def stored_settings(self) -> dict[int, dict[str, str]]:
        """Every guild's changed settings, ``{guild_id: {name: value}}`` (guilds on the defaults have none)."""
        settings: dict[int, dict[str, str]] = {}
        for row in await self._store.fetch("SELECT guild_id, name, value FROM guild_settings"):
            settings.setdefault(row[0], {})[row[1]] = row[2]
        return settings

    async def set_setting(self, guild_id: int, name: str, value: str) -> None:
        await self._store.execute(
            "INSERT INTO guild_settings (guild_id, name, value) VALUES ($1, $2, $3) "
            "ON CONFLICT (guild_id, name) DO UPDATE SET value = excluded.value",
            guild_id,
            name,
            value,
        )

    async def reset_setting(self, guild_id: int, name: str) -> None:
        await self._store.execute("DELETE FROM guild_settings WHERE guild_id = $1 AND name = $2", guild_id, name)
