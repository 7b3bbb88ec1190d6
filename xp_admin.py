"""Extension: an admin's XP tools, `!xp give|take|set|reset|reset-server|history|undo`, and `!export`.

A change goes through ``XpTracker.change``: the pending chat XP is written
first, then the new XP and one audit row per member in one transaction, then
the ranked board moves by the difference. Each member's reward roles then
follow the new level in either direction, and a level-up is announced when
the server's ``levelup-admin`` setting is on. Admin changes pay no level-up
coins: XP an admin gives is not chat, and an undo could not take coins back.
"""

from __future__ import annotations

import io
import math
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

import export
from chat import MemberListPending, Page, lines_within, only_pages, plain
from db import AuditEntry, CannotUndo
from storage.audit import MAX_XP

if TYPE_CHECKING:
    from bot import Tally

XpAmount = commands.Range[int, 1, MAX_XP]
XpTotal = commands.Range[int, 0, MAX_XP]


class UserId(commands.Converter):
    """A user ID or a user mention (``<@id>``): a member who left, whom no member converter finds."""

    async def convert(self, ctx: commands.Context, argument: str) -> discord.Object:
        text = argument.strip()
        if text.startswith("<@") and text.endswith(">"):
            text = text[2:-1].removeprefix("!")
        if not text.isdigit() or not 10**15 <= int(text) < 2**63:
            raise commands.BadArgument(argument)
        return discord.Object(int(text))


Target = discord.Member | discord.Role | UserId
CONFIRM_SECONDS = 60
ALIGN_AT_ONCE = 25  # more members changed than this: their reward roles go through a !rewards sync
PAGE_SIZE = 10
MIN_EXPORT_BYTES_PER_MEMBER = 60  # a member's line in an export is longer than this


class Confirmations:
    """One-time codes an admin repeats to confirm a command, each good for ``seconds`` and for its asker only."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._codes: dict[tuple[int, int], tuple[str, float]] = {}  # (guild, admin) -> code, when it expires

    def ask(self, guild_id: int, admin_id: int) -> str:
        """A new code for this admin in this guild (replacing any earlier one)."""
        now = self._clock()
        self._codes = {key: kept for key, kept in self._codes.items() if kept[1] > now}  # forget expired codes
        code = f"{secrets.randbelow(900_000) + 100_000}"
        self._codes[(guild_id, admin_id)] = (code, now + self.seconds)
        return code

    def confirm(self, guild_id: int, admin_id: int, code: str) -> bool:
        """Whether ``code`` is this admin's live code here; a code confirms once."""
        expected, until = self._codes.get((guild_id, admin_id), ("", 0.0))
        if not expected or code != expected or self._clock() > until:
            return False
        del self._codes[(guild_id, admin_id)]
        return True


class XpAdmin(commands.Cog, name="XP"):
    """Admins: change members' XP, see and undo the changes (Manage Server)."""

    def __init__(self, bot: Tally) -> None:
        self.bot = bot
        self.confirmations = Confirmations(CONFIRM_SECONDS)  # for !xp reset-server

    @commands.group(name="xp", invoke_without_command=True)
    @commands.guild_only()
    @commands.has_guild_permissions(manage_guild=True)
    async def xp(self, ctx: commands.Context) -> None:
        """Admins: give, take, set or reset members' XP; every change is logged and can be undone (Manage Server)."""
        prefix = ctx.clean_prefix
        await ctx.send(
            f"Usage: `{prefix}xp give|take|set <member|role> <amount> [reason]`, `{prefix}xp reset <member>`, "
            f"`{prefix}xp reset-server`, `{prefix}xp history <member>`, `{prefix}xp undo <number>`."
        )

    @xp.command(name="give")
    @commands.has_guild_permissions(manage_guild=True)  # a group's checks do not cover its subcommands
    async def xp_give(self, ctx: commands.Context, target: Target, amount: XpAmount, *, reason: str | None = None):
        """Give a member, or every member with a role, some XP (Manage Server)."""
        await self._change(ctx, "give", target, amount, reason)

    @xp.command(name="take")
    @commands.has_guild_permissions(manage_guild=True)
    async def xp_take(self, ctx: commands.Context, target: Target, amount: XpAmount, *, reason: str | None = None):
        """Take XP from a member, or every member with a role; never below 0 (Manage Server)."""
        await self._change(ctx, "take", target, amount, reason)

    @xp.command(name="set")
    @commands.has_guild_permissions(manage_guild=True)
    async def xp_set(self, ctx: commands.Context, target: Target, amount: XpTotal, *, reason: str | None = None):
        """Set the XP of a member, or of every member with a role (Manage Server)."""
        await self._change(ctx, "set", target, amount, reason)

    @xp.command(name="reset")
    @commands.has_guild_permissions(manage_guild=True)
    async def xp_reset(self, ctx: commands.Context, member: discord.Member | UserId, *, reason: str | None = None):
        """Take a member's XP to 0; they leave the leaderboard (Manage Server)."""
        await self._change(ctx, "reset", member, 0, reason)

    @xp.command(name="reset-server")
    @commands.has_guild_permissions(manage_guild=True)
    async def xp_reset_server(self, ctx: commands.Context, code: str | None = None) -> None:
        """Take every member's XP in this server to 0, after you confirm with a code (Manage Server)."""
        if code is None:
            board = await self.bot.xp.board(ctx.guild.id)
            code = self.confirmations.ask(ctx.guild.id, ctx.author.id)
            await ctx.send(
                f"This takes the XP of all {len(board):,} members of {plain(ctx.guild.name)} to 0. Each change is "
                f"logged and can be undone member by member. To go on, type `{ctx.clean_prefix}xp reset-server "
                f"{code}` within {CONFIRM_SECONDS} s."
            )
            return
        if not self.confirmations.confirm(ctx.guild.id, ctx.author.id, code):
            await ctx.send(
                f"That code is wrong or has expired; type `{ctx.clean_prefix}xp reset-server` for a new one."
            )
            return
        entries, totals = await self._write(ctx, "reset-server", None, 0, None)
        if not entries:
            await ctx.send("Nobody in this server has any XP; nothing changed.")
            return
        await ctx.send(f"Reset the XP of {len(entries):,} members to 0 ({_numbers(entries)}).")
        await self._follow(ctx, entries, totals)

    @xp.command(name="history")
    @commands.has_guild_permissions(manage_guild=True)
    async def xp_history(self, ctx: commands.Context, member: discord.Member | UserId, page: Page = 1):
        """Show the changes to a member's XP that were not chat, newest first (Manage Server)."""
        name = await self._name(ctx.guild, member.id)
        count, entries = await self.bot.db.xp_history(ctx.guild.id, member.id, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        if not count:
            await ctx.send(f"{plain(name)}'s XP has only ever changed by chatting.")
            return
        pages = math.ceil(count / PAGE_SIZE)
        if page > pages:
            await ctx.send(only_pages(pages, f"of {plain(name)}'s XP history"))
            return
        embed = discord.Embed(
            title=f"XP history: {name}",
            description=lines_within([_line(entry) for entry in entries], 4096),
            colour=discord.Colour.blurple(),
        )
        embed.set_footer(
            text=f"Page {page:,} of {pages:,} · {count:,} changes · {ctx.clean_prefix}xp undo <number> reverts one"
        )
        await ctx.send(embed=embed)

    @xp.command(name="undo")
    @commands.has_guild_permissions(manage_guild=True)
    async def xp_undo(self, ctx: commands.Context, number: commands.Range[int, 1, 2**62]) -> None:
        """Revert one logged change, if the member has earned no XP since (Manage Server)."""

        async def undo() -> list[AuditEntry]:
            return [await self.bot.db.undo_xp(ctx.guild.id, number, ctx.author.id)]

        try:
            entries, totals = await self.bot.xp.change(ctx.guild.id, undo)
        except CannotUndo as refused:
            await ctx.send(await self._cannot_undo(ctx, number, refused))
            return
        await self._follow(ctx, entries, totals)
        (undo_entry,) = entries
        name = await self._name(ctx.guild, undo_entry.user_id)
        await ctx.send(
            f"Undid #{number}: {plain(name)}'s XP went from {undo_entry.xp_before:,} back to "
            f"{undo_entry.xp_after:,}{self._levels(ctx, totals[undo_entry.user_id])} (logged as #{undo_entry.number})."
        )

    @commands.command(name="export")
    @commands.guild_only()
    @commands.has_guild_permissions(manage_guild=True)
    @commands.cooldown(1, 60, commands.BucketType.guild)
    async def export_server(self, ctx: commands.Context) -> None:
        """DM you this server's data (members, coins, cases, settings) as a JSON file (Manage Server)."""
        limit = ctx.guild.filesize_limit
        command = f"`python bot.py export --guild {ctx.guild.id}`"
        board = await self.bot.xp.board(ctx.guild.id)
        if len(board) * MIN_EXPORT_BYTES_PER_MEMBER > limit:  # surely too big: not even written
            await ctx.send(
                f"This server's export would be larger than Discord's upload limit here ({limit / 2**20:,.0f} MiB). "
                f"The bot's owner can run {command} on the bot's machine."
            )
            return
        await self.bot.xp.flush()  # the XP still in memory belongs in the file too
        settings = self.bot.settings
        with tempfile.TemporaryDirectory(prefix="tally-export-") as folder:
            path = Path(folder) / f"tally-export-{ctx.guild.id}.json"
            problems = io.StringIO()
            target = settings.database_url or settings.database_path
            if await export.export(target, ctx.guild.id, "json", path, problems, settings.level_curve):
                if "holds nothing" in problems.getvalue():
                    await ctx.send("There is nothing to export for this server yet.")
                    return
                raise commands.CommandError(problems.getvalue().strip())
            size = path.stat().st_size
            if size > limit:
                await ctx.send(
                    f"This server's export is {size / 2**20:,.1f} MiB, over Discord's upload limit here "
                    f"({limit / 2**20:,.0f} MiB). The bot's owner can run {command} on the bot's machine."
                )
                return
            try:  # by DM: it holds every case's reasons and moderators, not for whoever reads the channel
                await ctx.author.send(
                    f"{plain(ctx.guild.name)}'s data as of now: {len(board):,} members with XP, with coins, cases "
                    f"and settings (`tally-export` version {export.VERSION}; Tally's README describes it).",
                    file=discord.File(path),
                )
            except discord.Forbidden:
                await ctx.send("I can't DM you the export: allow DMs from this server's members, then try again.")
                return
            await ctx.send("I sent you this server's export by DM.")

    # -- doing it ------------------------------------------------------------------------

    async def _change(self, ctx: commands.Context, kind: str, target, amount: int, reason: str | None) -> None:
        if isinstance(target, discord.Role):
            if target.is_default():
                await ctx.send(f"For everyone, use `{ctx.clean_prefix}xp reset-server`, or name a role.")
                return
            if not await self.bot.every_member(ctx.guild, within=10):
                raise MemberListPending
            members = {m.id: m.display_name for m in target.members if not m.bot}
            if not members:
                await ctx.send(f"Nobody here has {target.mention}; nothing changed.")
                return
        elif isinstance(target, discord.Member) and target.bot:
            await ctx.send("Bots don't earn XP.")
            return
        else:
            members = {target.id: getattr(target, "display_name", "")}
        entries, totals = await self._write(ctx, kind, members, amount, reason)
        await self._follow(ctx, entries, totals)  # roles first: when the reply comes, they match
        if isinstance(target, discord.Role):
            changed = len(entries)
            said = _did(kind, f"{changed:,} member{'' if changed == 1 else 's'} with {target.mention}", amount)
            if entries:
                said += f" ({_numbers(entries)})"
            if unchanged := len(members) - len(entries):
                said += f"; {unchanged:,} {'was' if unchanged == 1 else 'were'} left as they were"
            await ctx.send(said + ".")
        elif not entries:
            name = await self._name(ctx.guild, target.id)
            xp = (await self.bot.xp.board(ctx.guild.id)).xp_of(target.id)
            await ctx.send(f"{plain(name)} has {xp:,} XP; nothing changed.")
        else:
            entry = entries[0]
            name = await self._name(ctx.guild, entry.user_id)
            before, after = totals[entry.user_id]
            moved = abs(after - before) if kind in ("give", "take") else amount  # taking stops at 0
            await ctx.send(
                f"{_did(kind, plain(name), moved)}: {before:,} → {after:,} XP{self._levels(ctx, (before, after))}. "
                f"Logged as #{entry.number}; `{ctx.clean_prefix}xp undo {entry.number}` reverts it."
            )

    async def _write(
        self, ctx: commands.Context, kind: str, members: dict[int, str] | None, amount: int, reason: str | None
    ) -> tuple[list[AuditEntry], dict[int, tuple[int, int]]]:
        """Change the XP in the database and on the board; the log entries and each member's totals."""
        reason = reason[:500] if reason else None
        return await self.bot.xp.change(
            ctx.guild.id, lambda: self.bot.db.change_xp(ctx.guild.id, kind, members, amount, ctx.author.id, reason)
        )

    async def _follow(
        self, ctx: commands.Context, entries: list[AuditEntry], totals: dict[int, tuple[int, int]]
    ) -> None:
        """Reward roles follow the new levels, both ways; level-ups announced if the server wants them."""
        server = self.bot.settings_of(ctx.guild)
        if not entries or (not server.rewards and not server.levelup_admin):
            return
        curve = self.bot.curve_of(ctx.guild)
        if len(entries) > ALIGN_AT_ONCE:  # a role or the whole server: one sync, one line, not a flood
            if server.rewards and await self.bot.reward_syncs.start(ctx.guild, ctx.channel.id, ctx.author.id) is None:
                await ctx.send(
                    f"A reward role sync is already running; run `{ctx.clean_prefix}rewards sync` again when it "
                    "ends so that these members' reward roles match their new levels."
                )
            up = sum(curve.level_for(after) > curve.level_for(before) for before, after in totals.values())
            if server.levelup_admin and up:
                await ctx.send(f"{up:,} members reached a new level.")
            return
        board = await self.bot.xp.board(ctx.guild.id)
        for entry in entries:
            member = ctx.guild.get_member(entry.user_id)
            if member is None:
                continue  # a member who left: their roles follow when they come back
            before = totals[entry.user_id][0]
            now = board.xp_of(member.id)  # now, not when the change was written: chat may have moved it since
            await self.bot.level_changed(
                member,
                ctx.channel,
                server,
                curve.level_for(before),
                curve.level_for(now),
                now,
                reason=f"XP {entry.kind} by {ctx.author} (#{entry.number})",
                announce=server.levelup_admin,
            )

    # -- saying it -------------------------------------------------------------------------

    def _levels(self, ctx: commands.Context, totals: tuple[int, int]) -> str:
        curve = self.bot.curve_of(ctx.guild)
        old, new = (curve.level_for(xp) for xp in totals)
        return f", level {old:,} → {new:,}" if old != new else f", still level {new:,}"

    async def _name(self, guild: discord.Guild, user_id: int) -> str:
        return (await self.bot.names_of(guild, [user_id]))[user_id]

    async def _cannot_undo(self, ctx: commands.Context, number: int, refused: CannotUndo) -> str:
        entry = refused.entry
        if refused.why == "missing":
            return f"There is no XP change #{number:,} in this server."
        name = plain(await self._name(ctx.guild, entry.user_id))
        if refused.why == "undone":
            return f"#{number:,} was already undone (by #{entry.undone_by:,})."
        if refused.why == "undo":
            return f"#{number:,} is itself an undo; to change {name}'s XP again, use `{ctx.clean_prefix}xp set`."
        if refused.why == "later":
            return f"{name}'s XP was changed again after #{number:,}: undo #{refused.later:,} first."
        return (
            f"{name} has earned XP since #{number:,} (it left them at {entry.xp_after:,}; they have "
            f"{refused.xp_now:,} now), so undoing it would lose that. Use `{ctx.clean_prefix}xp set` instead."
        )


def _did(kind: str, whom: str, amount: int) -> str:
    """What a change did, before its figures: "Gave Alice 50 XP", "Set the XP of 3 members with @Role to 0"."""
    if kind == "give":
        return f"Gave {whom} {amount:,} XP"
    if kind == "take":
        return f"Took {amount:,} XP from {whom}"
    if kind == "set":
        return f"Set the XP of {whom} to {amount:,}"
    return f"Reset the XP of {whom}"


def _numbers(entries: list[AuditEntry]) -> str:
    """Which log entries a change made: #7, or #7 to #19."""
    first, last = entries[0].number, entries[-1].number
    return f"logged as #{first:,}" if first == last else f"logged as #{first:,} to #{last:,}"


def _line(entry: AuditEntry) -> str:
    """One history line: number, date, kind, before and after, who, why, and whether it was undone."""
    who = f" by <@{entry.actor_id}>" if entry.actor_id else " from the command line"
    why = f": {plain(entry.reason, 200)}" if entry.reason else ""
    line = f"`#{entry.number}` <t:{entry.created_at}:d> **{entry.kind}** {entry.xp_before:,} → {entry.xp_after:,}"
    line += who + why
    if entry.undone_by:
        line += f" (undone by #{entry.undone_by})"
    return line


async def setup(bot: Tally) -> None:
    await bot.add_cog(XpAdmin(bot))
