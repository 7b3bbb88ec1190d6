"""Coins: profiles, balances, the daily claim, transfers, admin coins and the richest list.

A discord.py extension: ``bot.py`` loads it. Coins are whole numbers. Every
movement is one database transaction that also writes a ledger row (db.py),
and a debit only happens when the balance covers it, so concurrent commands
can never overdraw a member or create coins from nothing.
"""

from __future__ import annotations

import math
import time

import discord
from discord.ext import commands

from chat import YOU, Page, only_pages, plain
from storage.records import InsufficientCoins

MAX_AMOUNT = 1_000_000_000  # per command: large enough for any server, far from SQLite's integer limit
Amount = commands.Range[int, 1, MAX_AMOUNT]
PAGE_SIZE = 10
DAY = 86400
COLOUR = discord.Colour.gold()


def when(unix: int, style: str = "R") -> str:
    """A Discord timestamp: every reader sees it in their own time zone."""
    return f"<t:{unix}:{style}>"


def coin_text(amount: int) -> str:
    return f"{amount:,} coin" + ("" if amount == 1 else "s")


class Economy(commands.Cog):
    """Coins you cannot cheat."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.db = bot.db

    async def cog_before_invoke(self, ctx: commands.Context) -> None:
        if ctx.guild is not None:  # level-up coins queued with XP are written before anyone reads coins
            await self.bot.xp.settle_coins(ctx.guild.id)

    @commands.command()
    @commands.guild_only()
    async def profile(self, ctx: commands.Context, *, member: discord.Member = YOU) -> None:
        """Show a member's level, XP, rank, coins, and when they arrived."""
        board = await self.bot.xp.board(ctx.guild.id)
        progress = self.bot.curve_of(ctx.guild).progress(board.xp_of(member.id))
        rank = board.rank_of(member.id)
        first_seen = await self.db.first_seen(ctx.guild.id, member.id)
        embed = discord.Embed(title=member.display_name, colour=COLOUR)
        embed.set_thumbnail(url=member.display_avatar.url)
        embed.add_field(name="Level", value=f"{progress.level:,}")
        embed.add_field(name="XP", value=f"{progress.xp:,}")
        embed.add_field(name="Rank", value=f"#{rank:,} of {len(board):,}" if rank else "not ranked yet")
        embed.add_field(name="Coins", value=f"{await self.db.balance(ctx.guild.id, member.id):,}")
        if first_seen is not None:
            seen = when(first_seen, "D")
        else:
            seen = "just now" if rank else "not yet"
        embed.add_field(name="First seen by Tally", value=seen)
        joined = member.joined_at
        embed.add_field(name="Joined the server", value=when(int(joined.timestamp()), "D") if joined else "unknown")
        await ctx.send(embed=embed)

    @commands.command(aliases=["bal"])
    @commands.guild_only()
    async def balance(self, ctx: commands.Context, *, member: discord.Member = YOU) -> None:
        """Show how many coins you (or a member) have."""
        amount = await self.db.balance(ctx.guild.id, member.id)
        who = "You have" if member == ctx.author else f"{plain(member.display_name)} has"
        await ctx.send(f"{who} {coin_text(amount)}.")

    @commands.command()
    @commands.guild_only()
    async def daily(self, ctx: commands.Context) -> None:
        """Claim your daily coins (once every 24 hours)."""
        amount = self.bot.settings.daily_coins
        result = await self.db.claim_daily(
            ctx.guild.id, ctx.author.id, ctx.author.display_name, amount, int(time.time()), DAY
        )
        if result.claimed:
            await ctx.send(
                f"You claimed {coin_text(amount)} and now have {coin_text(result.balance)}. "
                f"Come back {when(result.next_claim_at)}."
            )
        else:
            await ctx.send(f"You already claimed today's coins. Your next claim is {when(result.next_claim_at)}.")

    @commands.command(aliases=["pay"])
    @commands.guild_only()
    async def transfer(self, ctx: commands.Context, member: discord.Member, amount: Amount) -> None:
        """Give some of your coins to another member (a whole number, 1 or more)."""
        if member == ctx.author:
            await ctx.send("You can't pay yourself.")
            return
        if member.bot:
            await ctx.send("Bots can't hold coins.")
            return
        try:
            mine, theirs = await self.db.transfer(
                ctx.guild.id,
                ctx.author.id,
                member.id,
                amount,
                from_name=ctx.author.display_name,
                to_name=member.display_name,
            )
        except InsufficientCoins as short:
            await ctx.send(f"You only have {coin_text(short.balance)}, so you can't pay {coin_text(amount)}.")
            return
        await ctx.send(
            f"You paid {plain(member.display_name)} {coin_text(amount)}. "
            f"You now have {coin_text(mine)}; {plain(member.display_name)} has {coin_text(theirs)}."
        )

    @commands.group(invoke_without_command=True)
    @commands.guild_only()
    @commands.has_guild_permissions(manage_guild=True)
    async def coins(self, ctx: commands.Context) -> None:
        """Admins: give, take or set a member's coins, or see their history (Manage Server)."""
        prefix = ctx.clean_prefix
        await ctx.send(
            f"Usage: `{prefix}coins give|take|set <member> <amount> [reason]` or `{prefix}coins history <member>`."
        )

    @coins.command(name="give")
    @commands.has_guild_permissions(manage_guild=True)  # a group's checks do not cover its subcommands
    async def coins_give(
        self, ctx: commands.Context, member: discord.Member, amount: Amount, *, reason: str | None = None
    ) -> None:
        """Create coins for a member."""
        if member.bot:
            await ctx.send("Bots can't hold coins.")
            return
        balance = await self.db.grant(
            ctx.guild.id, member.id, member.display_name, amount, "give", ctx.author.id, _reason(reason)
        )
        await ctx.send(f"Gave {plain(member.display_name)} {coin_text(amount)}; they now have {coin_text(balance)}.")

    @coins.command(name="take")
    @commands.has_guild_permissions(manage_guild=True)  # a group's checks do not cover its subcommands
    async def coins_take(
        self, ctx: commands.Context, member: discord.Member, amount: Amount, *, reason: str | None = None
    ) -> None:
        """Remove coins from a member (never below zero)."""
        taken, balance = await self.db.take(ctx.guild.id, member.id, amount, ctx.author.id, _reason(reason))
        await ctx.send(
            f"Took {coin_text(taken)} from {plain(member.display_name)}; they now have {coin_text(balance)}."
        )

    @coins.command(name="set")
    @commands.has_guild_permissions(manage_guild=True)  # a group's checks do not cover its subcommands
    async def coins_set(
        self,
        ctx: commands.Context,
        member: discord.Member,
        amount: commands.Range[int, 0, MAX_AMOUNT],
        *,
        reason: str | None = None,
    ) -> None:
        """Set a member's coins to an exact amount."""
        if member.bot:
            await ctx.send("Bots can't hold coins.")
            return
        old = await self.db.set_balance(
            ctx.guild.id, member.id, member.display_name, amount, ctx.author.id, _reason(reason)
        )
        await ctx.send(f"Set {plain(member.display_name)}'s coins from {old:,} to {amount:,}.")

    @coins.command(name="history")
    @commands.has_guild_permissions(manage_guild=True)  # a group's checks do not cover its subcommands
    async def coins_history(self, ctx: commands.Context, *, member: discord.Member) -> None:
        """Show a member's latest coin movements, newest first."""
        rows = await self.db.movements(ctx.guild.id, member.id)
        if not rows:
            await ctx.send(f"{plain(member.display_name)} has no coin movements yet.")
            return
        lines = []
        for row in rows:
            sign = "+" if row.to_id == member.id else "-"
            other = row.from_id if row.to_id == member.id else row.to_id
            detail = row.kind.replace("_", "-")
            if row.kind == "transfer":
                detail += f" {'from' if sign == '+' else 'to'} <@{other}>"
            elif row.actor_id != member.id:
                detail += f" by <@{row.actor_id}>"
            if row.reason:
                detail += f": {plain(row.reason)}"
            lines.append(f"`#{row.id}` {when(row.created_at, 'd')} **{sign}{row.amount:,}** {detail}")
        embed = discord.Embed(title=f"Coin history: {member.display_name}", description="\n".join(lines), colour=COLOUR)
        embed.set_footer(text=f"Balance: {await self.db.balance(ctx.guild.id, member.id):,} coins")
        await ctx.send(embed=embed)

    @commands.command()
    @commands.guild_only()
    @commands.cooldown(3, 10, commands.BucketType.member)
    async def richest(self, ctx: commands.Context, page: Page = 1) -> None:
        """Show the members with the most coins, 10 a page; ties go to the lower user ID."""
        total = await self.db.holders(ctx.guild.id)
        if not total:
            await ctx.send("Nobody has any coins here yet. Try `daily`!")
            return
        pages = math.ceil(total / PAGE_SIZE)
        if page > pages:
            await ctx.send(only_pages(pages))
            return
        start = (page - 1) * PAGE_SIZE
        lines = []
        for i, (user_id, amount, stored_name) in enumerate(await self.db.richest(ctx.guild.id, start, PAGE_SIZE), 1):
            member = ctx.guild.get_member(user_id)
            name = member.display_name if member else stored_name or f"user {user_id}"
            lines.append(f"**#{start + i:,}** {plain(name, 40)} · {coin_text(amount)}")
        embed = discord.Embed(title=f"Richest: {ctx.guild.name}", description="\n".join(lines), colour=COLOUR)
        embed.set_footer(text=f"Page {page:,} of {pages:,} · ties go to the lower user ID")
        await ctx.send(embed=embed)


def _reason(reason: str | None) -> str | None:
    return reason[:500] if reason else None


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Economy(bot))
