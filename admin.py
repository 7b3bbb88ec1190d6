"""Extension: what a server's admins change, `!settings` (alias `!config`).

The settings themselves, how they are read, checked and kept in memory, are
server_settings.py: this module is only the command members type.
"""

from __future__ import annotations

from discord.ext import commands

from chat import plain
from server_settings import SETTINGS, ServerSettings, ServerSettingsCache, SettingRefused, render

CHANNEL_SETTINGS = {"levelup": ("here", "dm", "off"), "modlog": ("off",)}  # settings a #channel can be


class ServerSettingsCommands(commands.Cog, name="Settings"):
    """This server's settings."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.cache: ServerSettingsCache = bot.server_settings

    @commands.command(name="settings", aliases=["config"], usage="[name] [value|reset]")
    @commands.guild_only()
    async def settings(self, ctx: commands.Context, name: str | None = None, *, value: str | None = None) -> None:
        """Show this server's settings; `settings <name> <value>` or `<name> reset` changes one (Manage Server)."""
        current = self.cache.of(ctx.guild.id)
        prefix = ctx.clean_prefix
        if name is None:
            lines = [f"**Settings for {plain(ctx.guild.name)}**"]
            for setting in SETTINGS.values():
                default = "" if setting.name in current.changed else " (default)"
                lines.append(f"`{setting.name}` · {setting.show(current)}{default}")
            lines.append(f"Change one with `{prefix}settings <name> <value>` (Manage Server), or `<name> reset`.")
            await ctx.send("\n".join(lines))
            return
        setting = SETTINGS.get(name.lower())
        if setting is None:
            await ctx.send(f"There is no setting called `{plain(name, 40)}`. Settings: {', '.join(SETTINGS)}.")
            return
        if value is None:
            default = "" if setting.name in current.changed else " (default)"
            await ctx.send(
                f"`{setting.name}` · {setting.show(current)}{default}\n{setting.summary}\n"
                f"Change it with `{prefix}settings {setting.name} {setting.example}`, or `reset`."
            )
            return
        if not ctx.author.guild_permissions.manage_guild:
            raise commands.MissingPermissions(["manage_guild"])
        if setting.name == "levelup" and value.lower() == "test":
            await self._test_levelup(ctx, current)
            return
        if value.lower() == "reset" or (setting.name == "modlog" and value.lower() == "off"):
            current = await self.cache.reset(ctx.guild.id, setting.name)
            await ctx.send(f"`{setting.name}` is back to the default: {setting.show(current)}.")
            return
        if setting.name in CHANNEL_SETTINGS and value.lower() not in CHANNEL_SETTINGS[setting.name]:
            try:
                channel = await commands.TextChannelConverter().convert(ctx, value)
            except commands.BadArgument:
                await ctx.send(f"I can't find a text channel called {plain(value, 100)} in this server.")
                return
            if not channel.permissions_for(ctx.guild.me).send_messages:
                await ctx.send(f"I can't post in {channel.mention}: give me Send Messages there first.")
                return
            value = str(channel.id)
        elif setting.name in CHANNEL_SETTINGS:
            value = value.lower()
        try:
            current = await self.cache.set(ctx.guild.id, setting.name, value)
        except SettingRefused as refused:
            await ctx.send(f"That won't work for `{setting.name}`: {refused}.")
            return
        await ctx.send(f"`{setting.name}` is now {setting.show(current)}.")

    async def _test_levelup(self, ctx: commands.Context, current: ServerSettings) -> None:
        """The announcement as it would read for the member asking, one level up; it pings nobody."""
        board = await self.bot.xp.board(ctx.guild.id)
        curve = self.bot.curve_of(ctx.guild)
        xp = board.xp_of(ctx.author.id)
        level = curve.level_for(xp)
        text = render(
            current.levelup_message, ctx.author, ctx.guild, level, level + 1, xp, board.rank_of(ctx.author.id)
        )
        where = {"here": "where it happens", "dm": "by DM", "off": "nowhere (announcements are off)"}
        await ctx.send(
            f"A level-up would be announced {where.get(current.levelup) or f'in <#{current.levelup_channel}>'} as:"
        )
        await ctx.send(text)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(ServerSettingsCommands(bot))
