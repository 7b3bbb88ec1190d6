"""Extension: what a server's admins change, `!settings` (alias `!config`).

The settings themselves, how they are read, checked and kept in memory, are
server_settings.py: this module is only the command members type.
"""

from __future__ import annotations

from typing import Literal

import discord
from discord.ext import commands

from chat import plain
from rewards import role_problem
from server_settings import (
    MAX_LEVEL,
    MAX_REWARDS,
    MAX_TARGETS,
    MULTIPLIER_RULE,
    SETTINGS,
    ServerSettings,
    ServerSettingsCache,
    SettingRefused,
    factor_text,
    multipliers_text,
    noxp_text,
    parse_multiplier,
    render,
    rewards_text,
)

KEYWORD_SETTINGS = ("curve", "departed", "levelup-admin", "rewards-mode", "rewards-on-rejoin")  # typed in any case
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
        _needs_manage_server(ctx)
        if setting.name == "levelup" and value.lower() == "test":
            await self._test_levelup(ctx, current)
            return
        if setting.name == "noxp" and value.lower() != "reset":  # !settings noxp add #channel
            action, _, target = value.partition(" ")
            await self._change_noxp(ctx, action.lower(), target.strip())
            return
        if setting.name == "rewards" and value.lower() != "reset":
            await ctx.send(f"Use `{prefix}rewards add <level> <role>` or `{prefix}rewards remove <level|role>`.")
            return
        if setting.name == "multipliers" and value.lower() != "reset":  # !settings multipliers @role 1.5
            target, _, factor = value.rpartition(" ")
            await self._change_multiplier(ctx, target.strip(), factor)
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
        elif setting.name in CHANNEL_SETTINGS or setting.name in KEYWORD_SETTINGS:
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

    # -- no-XP channels and roles, and multipliers ---------------------------------------

    @commands.group(name="noxp", invoke_without_command=True, usage="[add|remove <channel|role>]")
    @commands.guild_only()
    async def noxp(self, ctx: commands.Context) -> None:
        """List the channels and roles whose messages earn no XP; `noxp add|remove <channel|role>` (Manage Server)."""
        await ctx.send(f"No XP in: {SETTINGS['noxp'].show(self.cache.of(ctx.guild.id))}.")

    @noxp.command(name="add")
    @commands.guild_only()
    async def noxp_add(self, ctx: commands.Context, *, target: str) -> None:
        """Stop a channel's messages, or a role's members, from earning XP (Manage Server)."""
        await self._change_noxp(ctx, "add", target)

    @noxp.command(name="remove")
    @commands.guild_only()
    async def noxp_remove(self, ctx: commands.Context, *, target: str) -> None:
        """Let a channel or role earn XP again (Manage Server)."""
        await self._change_noxp(ctx, "remove", target)

    @commands.command(usage="[<channel|role> <factor|reset>]")
    @commands.guild_only()
    async def multipliers(self, ctx: commands.Context, *, change: str | None = None) -> None:
        """List XP multipliers; `multipliers <channel|role> <0-10|reset>` sets one (Manage Server)."""
        if change is None:
            shown = SETTINGS["multipliers"].show(self.cache.of(ctx.guild.id))
            await ctx.send(f"XP multipliers: {shown}. The rule: {MULTIPLIER_RULE}.")
            return
        target, _, factor = change.rpartition(" ")
        await self._change_multiplier(ctx, target.strip(), factor)

    async def _edit(self, ctx: commands.Context, name: str, change) -> bool:
        """Store what ``change`` makes of the setting; whether it was stored (else the member was told why)."""
        try:
            await self.cache.edit(ctx.guild.id, name, change)
        except SettingRefused as refused:
            await ctx.send(f"That won't work: {refused}.")
            return False
        return True

    async def _target(self, ctx: commands.Context, text: str) -> discord.abc.GuildChannel | discord.Role | None:
        """The channel or role a member named, or None after saying so."""
        for converter in (commands.GuildChannelConverter(), commands.RoleConverter()):
            try:
                found = await converter.convert(ctx, text)
            except commands.BadArgument:
                continue
            if isinstance(found, discord.CategoryChannel):
                await ctx.send(f"{plain(found.name)} is a category: name the channels in it instead.")
                return None
            return found
        await ctx.send(f"I can't find a channel or role called {plain(text or '(nothing)', 100)} in this server.")
        return None

    async def _change_noxp(self, ctx: commands.Context, action: str, text: str) -> None:
        _needs_manage_server(ctx)
        if action not in ("add", "remove"):
            await ctx.send(f"Use `{ctx.clean_prefix}noxp add <channel|role>` or `{ctx.clean_prefix}noxp remove ...`.")
            return
        target = await self._target(ctx, text)
        if target is None:
            return
        is_role = isinstance(target, discord.Role)

        def change(current: ServerSettings) -> str | None:
            channels, roles = set(current.noxp_channels), set(current.noxp_roles)
            targets = roles if is_role else channels
            if action == "add" and target.id not in targets and len(targets) >= MAX_TARGETS:
                raise SettingRefused(
                    f"a server can have at most {MAX_TARGETS} no-XP {'roles' if is_role else 'channels'}"
                )
            (targets.add if action == "add" else targets.discard)(target.id)
            return noxp_text(frozenset(channels), frozenset(roles)) or None

        if not await self._edit(ctx, "noxp", change):
            return
        who = f"Members with {target.mention}" if is_role else f"Messages in {target.mention}"
        await ctx.send(
            f"{who} {'no longer earn' if action == 'add' else 'earn'} XP{'' if action == 'add' else ' again'}."
        )

    async def _change_multiplier(self, ctx: commands.Context, text: str, factor: str) -> None:
        _needs_manage_server(ctx)
        if not text:
            await ctx.send(f"Use `{ctx.clean_prefix}multipliers <channel|role> <0-10|reset>`, e.g. `@Boosters 1.5`.")
            return
        target = await self._target(ctx, text)
        if target is None:
            return
        is_role = isinstance(target, discord.Role)
        try:
            tenths = 10 if factor.lower() == "reset" else parse_multiplier(factor)
        except ValueError as exc:
            await ctx.send(f"That won't work: {exc}.")
            return

        def change(current: ServerSettings) -> str | None:
            channels, roles = dict(current.channel_multipliers), dict(current.role_multipliers)
            targets = roles if is_role else channels
            if tenths == 10:  # x1 is no multiplier at all
                targets.pop(target.id, None)
            elif target.id not in targets and len(targets) >= MAX_TARGETS:
                raise SettingRefused(
                    f"a server can have at most {MAX_TARGETS} {'role' if is_role else 'channel'} multipliers"
                )
            else:
                targets[target.id] = tenths
            return multipliers_text(channels, roles) or None

        if not await self._edit(ctx, "multipliers", change):
            return
        await ctx.send(f"XP multiplier for {target.mention}: ×{factor_text(tenths)}.")

    # -- role rewards ------------------------------------------------------------------------

    @commands.group(name="rewards", invoke_without_command=True, usage="[add <level> <role> | remove <level|role>]")
    @commands.guild_only()
    async def rewards(self, ctx: commands.Context) -> None:
        """List the roles members earn by level; `rewards add|remove|mode` changes them (Manage Server)."""
        current = self.cache.of(ctx.guild.id)
        if not current.rewards:
            await ctx.send(f"No reward roles yet. Add one with `{ctx.clean_prefix}rewards add <level> <role>`.")
            return
        lines = [f"level {level:,}: <@&{role_id}>" for level, role_id in current.rewards]
        mode = (
            "members keep every reward role they reach"
            if current.rewards_mode == "stack"
            else ("members keep only the highest level's reward roles")
        )
        await ctx.send(f"**Reward roles** ({current.rewards_mode}: {mode})\n" + "\n".join(lines))

    @rewards.command(name="add")
    @commands.guild_only()
    @commands.has_guild_permissions(manage_guild=True)
    async def rewards_add(
        self, ctx: commands.Context, level: commands.Range[int, 0, MAX_LEVEL], *, role: discord.Role
    ) -> None:
        """Give a role to members who reach a level (Manage Server)."""
        if problem := role_problem(ctx.guild, role.id):
            await ctx.send(f"I can't use {role.mention} as a reward: {problem}.")
            return

        def change(current: ServerSettings) -> str:
            rewards = [(at, role_id) for at, role_id in current.rewards if role_id != role.id] + [(level, role.id)]
            if len(rewards) > MAX_REWARDS:
                raise SettingRefused(f"a server can have at most {MAX_REWARDS} reward roles")
            return rewards_text(rewards)

        if not await self._edit(ctx, "rewards", change):
            return
        await ctx.send(
            f"Members who reach level {level:,} get {role.mention}. "
            f"`{ctx.clean_prefix}rewards sync` gives it to the members already there."
        )

    @rewards.command(name="remove")
    @commands.guild_only()
    @commands.has_guild_permissions(manage_guild=True)
    async def rewards_remove(self, ctx: commands.Context, *, level_or_role: str) -> None:
        """Stop rewarding a role, or every role of a level (Manage Server)."""
        current = self.cache.of(ctx.guild.id)
        if level_or_role.isdigit() and any(at == int(level_or_role) for at, _ in current.rewards):
            level = int(level_or_role)
            gone = [role_id for at, role_id in current.rewards if at == level]
        else:
            try:
                role = await commands.RoleConverter().convert(ctx, level_or_role)
            except commands.BadArgument:
                role = None
            gone = [role.id] if role is not None and any(r == role.id for _, r in current.rewards) else []
            if not gone:
                await ctx.send(f"No level or role called {plain(level_or_role, 100)} has a reward role.")
                return
        await self.cache.edit(
            ctx.guild.id,
            "rewards",
            lambda latest: rewards_text([(at, r) for at, r in latest.rewards if r not in gone]) or None,
        )
        await ctx.send(f"No longer a reward: {', '.join(f'<@&{role_id}>' for role_id in gone)}.")

    @rewards.command(name="sync")
    @commands.guild_only()
    @commands.has_guild_permissions(manage_guild=True)
    async def rewards_sync(self, ctx: commands.Context) -> None:
        """Bring every member's reward roles in line with their level (Manage Server)."""
        if not self.cache.of(ctx.guild.id).rewards:
            await ctx.send(f"There are no reward roles to sync. Add one with `{ctx.clean_prefix}rewards add`.")
            return
        if await self.bot.reward_syncs.start(ctx.guild, ctx.channel.id, ctx.author.id) is None:
            running = await self.bot.db.sync_of(ctx.guild.id)
            done = f" ({running.done:,} members done)" if running else ""
            await ctx.send(f"A reward role sync is already running in this server{done}; one at a time.")

    @rewards.command(name="mode")
    @commands.guild_only()
    @commands.has_guild_permissions(manage_guild=True)
    async def rewards_mode(self, ctx: commands.Context, mode: Literal["stack", "replace"]) -> None:
        """stack: keep every reward role reached; replace: only the highest level's (Manage Server)."""
        await self.cache.set(ctx.guild.id, "rewards-mode", mode)
        await ctx.send(f"Reward roles: {mode}.")


def _needs_manage_server(ctx: commands.Context) -> None:
    """For the changes whose command also shows (``!settings``, ``!multipliers``): Manage Server to change."""
    if not ctx.author.guild_permissions.manage_guild:
        raise commands.MissingPermissions(["manage_guild"])


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(ServerSettingsCommands(bot))
