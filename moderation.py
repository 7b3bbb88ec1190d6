"""The moderation log: warn, kick and ban with numbered cases, history and corrections.

A discord.py extension: ``bot.py`` loads it. Every action checks the
moderator's and the bot's permissions and the role hierarchy first and
explains a refusal in one line; every case gets the guild's next number, is
stored (db.py), and is also posted to the guild's mod log channel if it has one.
"""

from __future__ import annotations

import logging
from typing import Literal

import discord
from discord.ext import commands

from chat import MAX_FIELD_VALUE, CaseNumber, Page, lines_within, only_pages, plain, safe_send
from storage.records import Case, DatabaseBusy, DatabaseUnavailable

log = logging.getLogger("tally")

PAGE_SIZE = 10
MAX_REASON = 500  # Discord's audit log takes 512 characters
COLOUR = discord.Colour.red()
VERBS = {"warn": ("warn", "warned"), "kick": ("kick", "kicked"), "ban": ("ban", "banned")}


def refusal(ctx: commands.Context, target: discord.Member, action: str) -> str | None:
    """Why ``ctx.author`` may not ``action`` ``target``, or None when they may."""
    verb, done = VERBS[action]
    name = plain(target.display_name)
    if target == ctx.author:
        return f"You can't {verb} yourself."
    if target.id == ctx.guild.owner_id:
        return f"The server owner can't be {done}."
    if target.id == ctx.guild.me.id:
        return f"I won't {verb} myself."
    if ctx.author.id != ctx.guild.owner_id and target.top_role >= ctx.author.top_role:
        return f"{name}'s top role is not below yours, so you can't {verb} them."
    if action != "warn" and target.top_role >= ctx.guild.me.top_role:
        return f"My top role is not above {name}'s, so I can't {verb} them. Move my role higher."
    return None


LEFT = "unknown (left the server)"


async def member_names(guild: discord.Guild, user_ids: set[int]) -> dict[int, str]:
    """Display names of members, escaped; LEFT only for those Discord says are gone.

    The member cache holds only the members Tally has seen, so the others are
    asked for in one gateway request before anyone is called "left".
    """
    names: dict[int, str] = {}
    missing = []
    for user_id in user_ids:
        member = guild.get_member(user_id)
        if member is not None:
            names[user_id] = plain(member.display_name)
        else:
            missing.append(user_id)
    if missing:
        try:
            found = await guild.query_members(user_ids=missing[:100], limit=100, cache=True)
        except (TimeoutError, discord.ClientException):
            log.warning("could not look up %d members of guild %s", len(missing), guild.id)
            return {user_id: names.get(user_id, "unknown") for user_id in user_ids}  # not known to have left
        for member in found:
            names[member.id] = plain(member.display_name)
    return {user_id: names.get(user_id, LEFT) for user_id in user_ids}


def case_embed(case: Case, moderator: str) -> discord.Embed:
    embed = discord.Embed(title=f"Case #{case.number} · {case.action}", colour=COLOUR)
    embed.add_field(name="Member", value=f"{plain(case.target_name)} (<@{case.target_id}>)")
    embed.add_field(name="Moderator", value=moderator)
    embed.add_field(
        name="Reason", value=plain(case.reason, MAX_REASON) if case.reason else "no reason given", inline=False
    )
    embed.add_field(name="Date", value=f"<t:{case.created_at}:f>")
    return embed


class Moderation(commands.Cog):
    """A moderation log moderators can trust."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.db = bot.db

    async def _record(self, ctx: commands.Context, action: str, target: discord.Member, reason: str | None) -> Case:
        case = await self.db.open_case(
            ctx.guild.id, action, target.id, target.display_name, ctx.author.id, reason[:MAX_REASON] if reason else None
        )
        channel_id = self.bot.settings_of(ctx.guild).modlog
        channel = ctx.guild.get_channel(channel_id) if channel_id else None
        if channel is not None:
            await safe_send(channel, embed=case_embed(case, plain(ctx.author.display_name)))
        return case

    @commands.command()
    @commands.guild_only()
    @commands.has_guild_permissions(manage_messages=True)
    async def warn(self, ctx: commands.Context, member: discord.Member, *, reason: str | None = None) -> None:
        """Warn a member: records a case and tells them by DM (Manage Messages)."""
        if problem := refusal(ctx, member, "warn"):
            await ctx.send(problem)
            return
        case = await self._record(ctx, "warn", member, reason)
        try:
            await member.send(f"You were warned in {ctx.guild.name}: {case.reason or 'no reason given'}")
            told = ""
        except discord.HTTPException:
            told = " (I couldn't DM them: their DMs are closed.)"
        await ctx.send(f"Case #{case.number}: warned {plain(member.display_name)}.{told}")

    @commands.command()
    @commands.guild_only()
    @commands.has_guild_permissions(kick_members=True)
    @commands.bot_has_guild_permissions(kick_members=True)
    async def kick(self, ctx: commands.Context, member: discord.Member, *, reason: str | None = None) -> None:
        """Kick a member, with the reason in the audit log (Kick Members)."""
        await self._remove(ctx, member, reason, "kick")

    @commands.command()
    @commands.guild_only()
    @commands.has_guild_permissions(ban_members=True)
    @commands.bot_has_guild_permissions(ban_members=True)
    async def ban(self, ctx: commands.Context, member: discord.Member, *, reason: str | None = None) -> None:
        """Ban a member, with the reason in the audit log (Ban Members)."""
        await self._remove(ctx, member, reason, "ban")

    async def _remove(self, ctx: commands.Context, member: discord.Member, reason: str | None, action: str) -> None:
        """Kick or ban once every check passed, then record the case."""
        if problem := refusal(ctx, member, action):
            await ctx.send(problem)
            return
        if action == "kick":
            await member.kick(reason=_audit(ctx, reason))
        else:
            await member.ban(reason=_audit(ctx, reason), delete_message_seconds=0)  # keep their messages
        done = f"{VERBS[action][1]} {plain(member.display_name)}"
        try:
            case = await self._record(ctx, action, member, reason)
        except DatabaseUnavailable as exc:  # the action happened: say so, and that its case is missing
            state = "busy" if isinstance(exc, DatabaseBusy) else "unavailable"
            log.warning(
                "%s of user %s by %s in guild %s has no case: the database was busy or unavailable",
                action,
                member.id,
                ctx.author.id,
                ctx.guild.id,
            )
            await ctx.send(f"I {done}, but the database was {state}, so no case was recorded. Use `warn` to note it.")
            return
        await ctx.send(f"Case #{case.number}: {done}.")

    @commands.command()
    @commands.guild_only()
    @commands.has_guild_permissions(manage_messages=True)
    async def modlog(self, ctx: commands.Context, member: discord.Member | discord.User, page: Page = 1) -> None:
        """Show a member's cases, newest first, 10 a page (Manage Messages)."""
        # member may have left: then it is a user found by mention or ID
        total, cases = await self.db.cases_of(ctx.guild.id, member.id, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        if not total:
            await ctx.send(f"{plain(member.display_name)} has a clean record here.")
            return
        pages = -(-total // PAGE_SIZE)
        if not cases:
            await ctx.send(only_pages(pages, "of cases"))
            return
        moderators = await member_names(ctx.guild, {c.moderator_id for c in cases})
        lines = [
            f"**#{c.number}** {c.action} · by {moderators[c.moderator_id]} · <t:{c.created_at}:d>\n"
            f"{plain(c.reason, 200) if c.reason else 'no reason given'}"
            for c in cases
        ]
        embed = discord.Embed(title=f"Mod log: {member.display_name}", description="\n".join(lines), colour=COLOUR)
        embed.set_footer(text=f"Page {page} of {pages} · {total} case{'s' if total != 1 else ''}")
        await ctx.send(embed=embed)

    @commands.command(name="case")
    @commands.guild_only()
    @commands.has_guild_permissions(manage_messages=True)
    async def case_(self, ctx: commands.Context, number: CaseNumber) -> None:
        """Show one case and its earlier reasons (Manage Messages)."""
        case = await self.db.case(ctx.guild.id, number)
        if case is None:
            await ctx.send(f"There is no case #{number} in this server.")
            return
        moderators = await member_names(ctx.guild, {case.moderator_id})
        embed = case_embed(case, moderators[case.moderator_id])
        history = await self.db.reason_history(ctx.guild.id, number)
        if history:
            lines = [
                f"<t:{old.replaced_at}:d> {plain(old.reason, 150) if old.reason else 'no reason given'}"
                for old in reversed(history)  # newest first: the field holds what fits
            ]
            embed.add_field(
                name="Earlier reasons (newest first)",
                value=lines_within(lines, MAX_FIELD_VALUE, "… and {n} earlier"),
                inline=False,
            )
        await ctx.send(embed=embed)

    @commands.command()
    @commands.guild_only()
    @commands.has_guild_permissions(manage_messages=True)
    async def reason(self, ctx: commands.Context, number: CaseNumber, *, text: str) -> None:
        """Correct a case's reason; the earlier one is kept (Manage Messages)."""
        case = await self.db.correct_reason(ctx.guild.id, number, text[:MAX_REASON], ctx.author.id)
        if case is None:
            await ctx.send(f"There is no case #{number} in this server.")
            return
        await ctx.send(f"Case #{number}'s reason is now: {plain(case.reason, MAX_REASON)}")

    @commands.command()
    @commands.guild_only()
    @commands.has_guild_permissions(manage_guild=True)
    async def modlogchannel(self, ctx: commands.Context, channel: discord.TextChannel | Literal["off"]) -> None:
        """Post every new case in a channel, or `off` (Manage Server)."""
        if channel == "off":
            await self.bot.server_settings.reset(ctx.guild.id, "modlog")
            await ctx.send("New cases will no longer be posted in a channel.")
            return
        await self.bot.server_settings.set(ctx.guild.id, "modlog", str(channel.id))
        await ctx.send(f"New cases will be posted in {channel.mention}.")


def _audit(ctx: commands.Context, reason: str | None) -> str:
    """The audit log entry: who did it through Tally, and why."""
    return f"{ctx.author} ({ctx.author.id}): {reason or 'no reason given'}"[:512]


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Moderation(bot))
