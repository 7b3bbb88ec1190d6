"""Tally: XP, levels and leaderboards for a Discord server.

Run it with ``python bot.py`` (settings come from ``.env``, see ``.env.example``).
This file holds the leveling bot itself: the XP handler and the ``level``,
``leaderboard`` and ``prefix`` commands, the one error handler, and ``main()``,
which owns the process from settings to shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import itertools
import logging
import math
import os
import platform
import random
import signal
import sys
from collections.abc import Iterable
from pathlib import Path

import aiohttp
import discord
from discord.ext import commands
from dotenv import load_dotenv

import backup
import export
import imports
import levels
from chat import MAX_CONTENT, YOU, MemberListPending, Page, TallyContext, cut, only_pages, plain, safe_send
from config import ConfigError, Settings, database_target, level_curve, load_settings
from db import Database, DatabaseBusy, DatabaseRefused, DatabaseUnavailable
from rewards import RewardSyncs, RoleRewards
from server_settings import ServerSettings, ServerSettingsCache, SettingRefused, render
from storage.copy import copy_data
from xp import GuildBoard, XpTracker

log = logging.getLogger("tally")

PAGE_SIZE = 10
EXTENSIONS = ("economy", "moderation", "admin", "xp_admin")  # modules beside bot.py, each a cog with its commands
CHAT_TYPES = (0, 19)  # message types members write: default and reply (the rest are system messages)
EMBED_COLOUR = discord.Colour.blurple()
GIL_SWITCH_SECONDS = 0.001  # how long a background thread holds the GIL while the event loop waits for it
TIE_RULE = "ties go to the lower user ID (the older Discord account)"

# Invite permissions (https://discord.com/developers/docs/topics/permissions): View Channels, Send Messages,
# Embed Links, Attach Files and Manage Roles for levels, coins and rewards; Kick and Ban Members on top for moderation.
LEVELS_PERMISSIONS = 1024 | 2048 | 16384 | 32768 | 268435456
EVERYTHING_PERMISSIONS = LEVELS_PERMISSIONS | 2 | 4


def freeze_caches(*, collect: bool) -> None:
    """Freeze what stands now (the bot as loaded; later discord.py's caches of servers, channels and
    members) out of the garbage collector's full passes: one walked a cache of 270,000 members for
    13-18 ms, and a bigger cache for longer, stalling the event loop each time. Frozen objects are still
    freed when nothing refers to them, but never as cycles; a server's objects refer to each other, so
    when caches are dropped (a server left, a new session) ``collect`` first collects everything once
    (one pass, then frozen again).
    """
    if collect:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


def invite_url(application_id: int, permissions: int) -> str:
    return f"https://discord.com/oauth2/authorize?client_id={application_id}&scope=bot&permissions={permissions}"


PORTAL_INTENTS = (
    "turn on the Message Content and Server Members privileged intents in the Discord Developer Portal "
    "(your application > Bot > Privileged Gateway Intents), then start Tally again"
)
PORTAL_TOKEN = (
    "Discord rejected DISCORD_TOKEN: reset the token in the Discord Developer Portal "
    "(your application > Bot > Reset Token), put the new one in .env, then start Tally again"
)


class Tally(commands.AutoShardedBot):
    """The bot: intents, prefixes, mentions and lifetime are set here on purpose.

    Sharded always: unset, discord.py asks Discord for the recommended shard
    count and runs them all here; with SHARD_COUNT and SHARD_IDS this process
    runs only its shards, so each guild lives in exactly one process
    ((guild_id >> 22) % SHARD_COUNT) with its board, cooldowns and prefix.
    """

    def __init__(self, settings: Settings, db: Database) -> None:
        # Tally never joins a voice channel: discord.py's warnings about voice libraries are noise at every start.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.none()
        intents.guilds = True
        intents.members = True  # names for !level <name> and the leaderboard
        intents.guild_messages = True
        intents.dm_messages = True  # so !help answers in DMs
        intents.message_content = True  # prefix commands need the text
        super().__init__(
            command_prefix=None,  # see get_prefix
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),  # opt in per message where a ping is the point
            # every command is listed, also to members who cannot run it: the summary names the permission
            help_command=TallyHelp(verify_checks=False, command_attrs={"help": "List every command, or explain one."}),
            case_insensitive=True,
            chunk_guilds_at_startup=False,  # members are fetched on demand, start-up stays fast
            max_messages=None,  # no message cache: Tally never looks back at old messages
            shard_count=settings.shard_count,
            shard_ids=list(settings.shard_ids) if settings.shard_ids is not None else None,
        )
        self.settings = settings
        self.db = db
        self.server_settings = ServerSettingsCache(db, settings)  # each server's, in memory
        self._curves = {name: levels.curve(name) for name in levels.CURVE_NAMES}
        self.rewards = RoleRewards()
        self.reward_syncs = RewardSyncs(self)
        self.xp = XpTracker(
            db,
            xp_per_message=settings.xp_per_message,
            cooldown_seconds=settings.xp_cooldown_seconds,
            flush_seconds=settings.xp_flush_seconds,
        )
        self._shutdown: asyncio.Task[None] | None = None
        self._shards_ready: set[int] = set()  # shards whose servers have arrived once (see on_shard_ready)
        self.unsaved_at_shutdown = 0  # members whose pending XP the database would not take at shutdown
        # Plain chat is counted from the gateway's payload (see _parse_message_create); the rest goes on to
        # discord.py's own parser. Tally is the only one listening for messages.
        parsers = self._connection.parsers
        self._discord_parse_message_create = parsers["MESSAGE_CREATE"]
        parsers["MESSAGE_CREATE"] = self._parse_message_create

    async def setup_hook(self) -> None:
        await self.server_settings.load()
        await self.add_cog(Leveling(self))
        for extension in EXTENSIONS:
            try:
                await self.load_extension(extension)
            except commands.ExtensionError:
                log.exception("could not load the %s extension; its commands are unavailable", extension)
        self.xp.start()
        # The event loop is the one thread that answers members; the others (the database's, the one that
        # builds a big board) work in the background. Python hands the GIL from one to another every 5 ms by
        # default, so each time the loop woke while they held it, it waited that long, often twice over. Every
        # millisecond instead: the loop's worst wait while a million-member board loads halved, at no cost in
        # messages per second (both measured by the benches under bench/).
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        # The worker thread the first big board is built in, started now: starting it then made the event
        # loop wait until the new thread ran, on a busy machine up to 45 ms.
        await asyncio.to_thread(int)
        # What stands now (modules, commands, the settings) lives as long as the bot, and a full pass of
        # the garbage collector over it takes about 20 ms: the event loop stalled whenever one ran (every
        # few hundred milliseconds while a big board loads). (No collection first: it would cost the start
        # as much, for the little garbage importing leaves.) The servers' caches follow on_shard_ready.
        freeze_caches(collect=False)

    async def get_prefix(self, message: discord.Message) -> list[str]:
        """The guild's prefix (from memory, never a query), then a mention of the bot."""
        return [self.prefix_of(message.guild), *self._mention_prefixes]

    @functools.cached_property
    def _mention_prefixes(self) -> tuple[str, str]:
        return f"<@{self.user.id}> ", f"<@!{self.user.id}> "  # the user is known once logged in

    def settings_of(self, guild: discord.Guild | None) -> ServerSettings:
        """The server's settings, from memory (the defaults in DMs)."""
        return self.server_settings.of(guild.id if guild is not None else None)

    def prefix_of(self, guild: discord.Guild | None) -> str:
        return self.settings_of(guild).prefix

    def curve_of(self, guild: discord.Guild) -> levels.Curve:
        return self._curves[self.settings_of(guild).curve]

    def _parse_message_create(self, data: dict) -> None:
        """The gateway's MESSAGE_CREATE: plain chat in a server earns its XP straight from the payload.

        discord.py's parser builds a Message for every message (its author,
        member, mentions, embeds, ...): a third of what a message costs it,
        and plain chat needs none of it. A member's message in a server (no
        bot, no webhook, a default message or a reply) that starts with none
        of the prefixes cannot be a command (discord.py's ``get_context``
        looks for exactly these), so its XP is awarded here, and only a
        level-up builds the Message, for its announcement. Everything else
        (commands, DMs, system messages, a server whose board is still being
        read after a start) goes to discord.py's parser and on_message.
        """
        if not self._chat_from_payload(data):
            self._discord_parse_message_create(data)

    def _chat_from_payload(self, data: dict) -> bool:
        """Award a plain chat message's XP from its payload; False when it is not one (nothing was done)."""
        guild_id, member, author = data.get("guild_id"), data.get("member"), data["author"]
        if guild_id is None or member is None or author.get("bot") or "webhook_id" in data:
            return False
        if data.get("type", 0) not in CHAT_TYPES:
            return False
        guild = self._connection._get_guild(int(guild_id))
        if guild is None:
            return False
        server = self.server_settings.of(guild.id)
        content = data.get("content", "")
        if content.startswith(server.prefix) or content.startswith(self._mention_prefixes):
            return False
        channel_id = int(data["channel_id"])
        channel = guild.get_channel_or_thread(channel_id)
        # a thread earns as its parent channel does
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else channel_id
        role_ids = map(int, member.get("roles", ())) if server.noxp_roles or server.role_multipliers else ()
        amount = self.xp_earned(server, parent_id, role_ids)
        if amount:
            name = member.get("nick") or author.get("global_name") or author["username"]
            gain = self.xp.award_now(guild.id, int(author["id"]), name, amount, server.cooldown)
            if gain is False:  # the board is still being read: on_message waits for it
                return False
            if gain is not None and self._levels_moved(server, *gain):
                where, _ = self._connection._get_guild_channel(data)
                message = discord.Message(state=self._connection, channel=where, data=data)  # type: ignore[arg-type]
                self.dispatch("chat_gain", message, server, *gain)
        if channel is not None and hasattr(channel, "last_message_id"):
            channel.last_message_id = int(data["id"])  # as discord.py's parser keeps it
        return True

    async def on_message(self, message: discord.Message) -> None:
        """Run a command, or else count the message as chat that may earn XP.

        One handler rather than a listener beside ``process_commands``: the
        message is parsed for a command once, and no second task is scheduled
        for every message (see bench/ingest.py). An unknown command is chat.
        Most plain chat never gets here (see _parse_message_create); what does
        and starts with none of the prefixes goes straight to the XP award
        without a Context and the prefix coroutine being built for it.
        """
        if message.author.bot:
            return
        guild = message.guild
        if guild is not None:
            server = self.settings_of(guild)
            content = message.content
            if not content.startswith(server.prefix) and not content.startswith(self._mention_prefixes):
                if message.webhook_id is None and not message.is_system():
                    await self.award_xp(message, server)
                return
        ctx = await self.get_context(message, cls=TallyContext)  # its replies always fit Discord's limits
        if ctx.command is not None:
            await self.invoke(ctx)
        elif guild is not None and message.webhook_id is None and not message.is_system():
            await self.award_xp(message, self.settings_of(guild))

    def xp_earned(self, server: ServerSettings, channel_id: int, role_ids: Iterable[int]) -> int:
        """The XP a message in ``channel_id`` (a thread's parent) by a member with these roles earns."""
        amount = server.xp_min
        if server.xp_max != amount:  # uniform over xp_min..xp_max (random() is a tenth of randint's cost)
            amount += int(random.random() * (server.xp_max - amount + 1))
        if server.has_xp_rules:  # no-XP channels and roles, multipliers: memory only, no query
            amount = server.xp_for(amount, channel_id, role_ids)
        return amount

    def _levels_moved(self, server: ServerSettings, before: int, after: int) -> bool:
        curve = self._curves[server.curve]
        return curve.level_for(after) != curve.level_for(before)

    async def award_xp(self, message: discord.Message, server: ServerSettings) -> None:
        """Give the author XP (unless on cooldown) as the server's settings say, and announce a new level."""
        author, channel = message.author, message.channel
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else channel.id
        amount = self.xp_earned(server, parent_id, getattr(author, "_roles", ()))
        if not amount:
            return  # nothing earned, and no cooldown started
        gain = await self.xp.award(message.guild.id, author.id, author.display_name, amount, server.cooldown)
        if gain is not None:
            await self.on_chat_gain(message, server, *gain)

    async def on_chat_gain(self, message: discord.Message, server: ServerSettings, before: int, after: int) -> None:
        """After chat earned XP: reward roles, coins and the announcement of a new level."""
        curve = self._curves[server.curve]
        old_level, new_level = curve.level_for(before), curve.level_for(after)
        if new_level <= old_level:
            return
        author = message.author
        reward = self.settings.coins_per_level * (new_level - old_level)
        if reward:
            # queued with the XP that earned them: as durable as that XP, even while the database is busy
            self.xp.add_coins(message.guild.id, author.id, author.display_name, reward)
        await self.level_changed(
            author,
            message.channel,
            server,
            old_level,
            new_level,
            after,
            reason=f"reached level {new_level}",
            coins=reward,
        )

    async def level_changed(
        self,
        member: discord.Member,
        channel: discord.abc.Messageable,
        server: ServerSettings,
        old_level: int,
        new_level: int,
        xp: int,
        *,
        reason: str,
        announce: bool = True,
        coins: int = 0,
    ) -> None:
        """Bring a member's reward roles in line with a new level (either way), and announce a level-up.

        ``channel`` is where it happened: the announcement goes there under
        ``levelup here``, and a reward role problem is told there when the
        server has no announcement or mod-log channel.
        """
        aligned = await self.rewards.align(member, new_level, server, reason=reason, tell=channel)
        if new_level <= old_level or not announce or server.levelup == "off":
            return
        template = server.levelup_role_message if aligned.given else server.levelup_message
        # a rank settles the board (every change since the last read): only when the message shows it
        rank = (await self.xp.board(member.guild.id)).rank_of(member.id) if "{rank}" in template else None
        text = render(template, member, member.guild, old_level, new_level, xp, rank, aligned.given)
        if coins:
            text += f" (+{coins:,} coins)"
        await self.announce(member, channel, server, text)

    async def announce(
        self, member: discord.Member, channel: discord.abc.Messageable, server: ServerSettings, text: str
    ) -> None:
        """Post a level-up where the server wants it; only the member is ever pinged."""
        ping = discord.AllowedMentions(users=[member])  # the one ping Tally makes
        if server.levelup == "dm":
            try:
                await member.send(text, allowed_mentions=ping)
            except discord.HTTPException:  # DMs closed (50007): the announcement is skipped, never an error
                log.debug("could not DM a level-up to user %s", member.id)
            return
        if server.levelup == "channel":
            channel = member.guild.get_channel(server.levelup_channel) or channel  # a deleted channel: here
        await safe_send(channel, text, allowed_mentions=ping)

    async def on_member_join(self, member: discord.Member) -> None:
        """A member who comes back gets the reward roles their XP earned, unless the server turned that off."""
        server = self.settings_of(member.guild)
        if not server.rewards or not server.rewards_on_rejoin or member.bot:
            return
        xp = (await self.xp.board(member.guild.id)).xp_of(member.id)
        if xp:
            level = self._curves[server.curve].level_for(xp)
            await self.rewards.align(member, level, server, reason="rejoined: reward roles of their level")

    async def on_shard_ready(self, shard_id: int) -> None:
        """A shard's servers have all arrived: their caches are frozen out of the garbage collector's way.

        A shard ready again started a new session, whose caches replaced the
        old ones: those are collected first.
        """
        freeze_caches(collect=shard_id in self._shards_ready)
        self._shards_ready.add(shard_id)

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        freeze_caches(collect=True)  # what the server's cache held goes now, not never

    async def on_ready(self) -> None:
        if not self.guilds and self.application_id is not None:
            log.info(
                "Tally is in no server yet: invite it with %s (levels and coins) or %s (with moderation too)",
                invite_url(self.application_id, LEVELS_PERMISSIONS),
                invite_url(self.application_id, EVERYTHING_PERMISSIONS),
            )
        await self._resume_reward_syncs()
        per_shard = {shard_id: 0 for shard_id in self.shards}
        for guild in self.guilds:
            per_shard[guild.shard_id] = per_shard.get(guild.shard_id, 0) + 1
        log.info(
            "connected as %s (ID %s) to %d servers on shards %s of %s (%s)",
            self.user,
            self.user.id,
            len(self.guilds),
            ",".join(map(str, sorted(per_shard))),
            self.shard_count,
            ", ".join(f"shard {shard_id}: {count} servers" for shard_id, count in sorted(per_shard.items())),
        )

    async def names_of(self, guild: discord.Guild, user_ids: list[int]) -> dict[int, str]:
        """Current display names, else the last name Tally saw (members who left), else ``user <ID>``."""
        names: dict[int, str] = {}
        missing = []
        for user_id in user_ids:
            member = guild.get_member(user_id)
            if member is not None:
                names[user_id] = member.display_name
            else:
                missing.append(user_id)
        if missing:
            try:
                stored = await self.db.names(guild.id, missing)
            except DatabaseUnavailable:  # the server is away: the board still answers, by ID where need be
                stored = {}
            for user_id in missing:
                names[user_id] = self.xp.pending_name(guild.id, user_id) or stored.get(user_id) or f"user {user_id}"
        return names

    async def every_member(self, guild: discord.Guild, within: float) -> bool:
        """Fill the member cache with the whole member list from the gateway; whether it is complete.

        Discord answers a whole-list request once per 30 s per server and
        answers any other with a RATE_LIMITED event, which discord.py does not
        pass on: ``chunk()`` would wait forever, so the wait is bounded.
        Join and leave events keep the list current afterwards.
        """
        if guild.chunked:
            return True
        try:
            await asyncio.wait_for(guild.chunk(), within)
        except TimeoutError:
            log.warning("guild %s: Discord did not send the member list within %s s", guild.id, within)
        return guild.chunked

    async def _resume_reward_syncs(self) -> None:
        """Go on with the ``!rewards sync`` runs a restart interrupted, for this process's servers."""
        try:
            states = await self.db.syncs()
        except DatabaseUnavailable as exc:
            log.warning("could not look for reward syncs to resume (%s); they resume at the next start", exc)
            return
        for state in states:
            if (guild := self.get_guild(state.guild_id)) is not None:
                self.reward_syncs.resume(guild, state)

    async def close(self) -> None:
        """Close the gateway, then save pending XP, then close the database.

        A signal and ``async with`` may both call this: both wait for one shutdown.
        """
        if self._shutdown is None:
            self._shutdown = asyncio.create_task(self._shut_down())
        await asyncio.shield(self._shutdown)

    async def _shut_down(self) -> None:
        log.info("shutting down")
        loop = asyncio.get_running_loop()
        began = loop.time()
        await self.reward_syncs.stop()  # each saves how far it got: the next start goes on
        await super().close()
        try:
            # the bound counts from the signal: the gateway's close already took some of it
            within = self.settings.shutdown_save_seconds - (loop.time() - began)
            unsaved = await self.xp.stop(within=max(1.0, within))
            self.unsaved_at_shutdown = sum(len(kept.gains) for kept in unsaved)
            if unsaved:
                try:
                    kept = self.db.keep_unsaved(unsaved)
                    log.error("kept that XP in %s: Tally adds it to the database at its next start", kept)
                except Exception as exc:
                    log.error(
                        "LOST: the XP of %d members could not be kept in a file either (%s)",
                        self.unsaved_at_shutdown,
                        exc,
                    )
        finally:
            await self.db.close()
        if not self.unsaved_at_shutdown:
            log.info("shut down cleanly")

    async def on_command_error(self, ctx: commands.Context[Tally], error: commands.CommandError) -> None:
        """The one error handler: one friendly line for the member, details for the log."""
        if isinstance(error, commands.CommandNotFound):
            return
        reply = explain(ctx, error)
        if reply is None:
            original = getattr(error, "original", error)
            if isinstance(original, discord.Forbidden):
                # Discord refused something (a reply, a kick): say so if we can post here at all;
                # when posting is what failed, safe_send logs the channel.
                await safe_send(
                    ctx.channel, "Discord refused that: I'm missing a permission here, or my role is too low."
                )
                return
            if isinstance(original, discord.DiscordServerError):  # Discord's side failed past discord.py's retries
                log.warning("command %s: Discord answered %s; nothing more to do", ctx.command, original.status)
                await safe_send(ctx.channel, "Discord is having trouble right now; try that again in a minute.")
                return
            if isinstance(original, DatabaseBusy):  # another program holds the database (a backup): nothing was changed
                log.warning("command %s in guild %s: the database is busy", ctx.command, getattr(ctx.guild, "id", None))
                await safe_send(
                    ctx.channel, "The database is busy right now; nothing was changed. Try again in a minute."
                )
                return
            if isinstance(original, DatabaseUnavailable):  # the PostgreSQL server is down or restarting
                log.warning("command %s in guild %s: %s", ctx.command, getattr(ctx.guild, "id", None), original)
                await safe_send(ctx.channel, "The database is unavailable right now; try again in a minute.")
                return
            log.error(
                "command %s failed in guild %s channel %s for user %s",
                ctx.command,
                getattr(ctx.guild, "id", None),
                ctx.channel.id,
                ctx.author.id,
                exc_info=original,
            )
            reply = "Sorry, something went wrong on my side. The bot's owner can find the details in the log."
        await safe_send(ctx.channel, reply)


def invocation(prefix: str, command: commands.Command) -> str:
    """How to type a command, e.g. ``!level [member]``, in code formatting."""
    return f"`{prefix}{command.qualified_name} {command.signature}`".replace(" `", "`")


def usage(ctx: commands.Context[Tally]) -> str:
    return f"Usage: {invocation(ctx.clean_prefix, ctx.command)}" if ctx.command else ""


def permission_names(permissions: list[str]) -> str:
    """``["manage_guild"]`` as Discord's own wording: ``Manage Server``."""
    return ", ".join(p.replace("_", " ").replace("guild", "server").title() for p in permissions)


KINDS = {"Member": "member", "Role": "role", "UserId": "user ID"}  # what a member can name, as they would say it


def explain(ctx: commands.Context[Tally], error: commands.CommandError) -> str | None:
    """The member-facing line for an expected error, or None for a bug."""
    if isinstance(error, MemberListPending):
        return "I'm still getting this server's member list from Discord; try again in a minute."
    if isinstance(error, commands.NoPrivateMessage):
        return "This command only works in a server."
    if isinstance(error, commands.MissingPermissions):
        return f"You need the {permission_names(error.missing_permissions)} permission to do that."
    if isinstance(error, commands.BotMissingPermissions):
        return f"I need the {permission_names(error.missing_permissions)} permission to do that."
    if isinstance(error, commands.CommandOnCooldown):
        return f"Slow down: try that again in {math.ceil(error.retry_after)} s."
    if isinstance(error, commands.MemberNotFound):
        return f"I can't find a member called {plain(error.argument)} in this server."
    if isinstance(error, commands.BadUnionArgument):  # e.g. "member or role"
        kinds = " or ".join(KINDS.get(converter.__name__, "thing") for converter in error.converters)
        return f"I can't find a {kinds} called {plain(getattr(error.errors[0], 'argument', ''))} in this server."
    if isinstance(error, commands.MissingRequiredArgument):
        return f"Missing `{error.param.name}`. {usage(ctx)}"
    if isinstance(error, commands.RangeError):
        name = ctx.current_parameter.name if ctx.current_parameter else "number"
        if error.maximum is None:
            return f"`{name}` must be a whole number of at least {error.minimum:,}. {usage(ctx)}"
        return f"`{name}` must be a whole number from {error.minimum:,} to {error.maximum:,}. {usage(ctx)}"
    if isinstance(error, commands.UserInputError):
        name = ctx.current_parameter.name if ctx.current_parameter else "argument"
        return f"That isn't a valid `{name}`. {usage(ctx)}"
    if isinstance(error, commands.CheckFailure):
        return "You can't use this command here."
    return None


class Leveling(commands.Cog):
    """Levels and leaderboards."""

    def __init__(self, bot: Tally) -> None:
        self.bot = bot

    @commands.command(aliases=["rank"])
    @commands.guild_only()
    async def level(self, ctx: commands.Context[Tally], *, member: discord.Member = YOU) -> None:
        """Show a member's level, XP and rank (you, or a mention, ID or name)."""
        if member.bot:
            await ctx.send(f"{plain(member.display_name)} is a bot; bots don't earn XP.")
            return
        if self.bot.settings_of(ctx.guild).show_departed:
            xp, rank, ranked = await self.bot.xp.standing(ctx.guild.id, member.id)
        else:  # ranks among the members still here: from the board (and the member list) only
            board = await self.bot.xp.board(ctx.guild.id)
            present = await self._present(ctx.guild, board)
            ranks = (i for i, (user_id, _) in enumerate(present, start=1) if user_id == member.id)
            xp, rank, ranked = board.xp_of(member.id), next(ranks, None), len(present)
        if rank is None:
            who = "You haven't" if member == ctx.author else f"{plain(member.display_name)} hasn't"
            await ctx.send(f"{who} earned any XP in this server yet. Chatting earns XP.")
            return
        progress = self.bot.curve_of(ctx.guild).progress(xp)
        embed = discord.Embed(title=f"{member.display_name}", colour=EMBED_COLOUR)
        embed.set_thumbnail(url=member.display_avatar.url)
        embed.add_field(name="Level", value=f"{progress.level:,}")
        embed.add_field(name="Rank", value=f"#{rank:,} of {ranked:,}")
        embed.add_field(name="Total XP", value=f"{progress.xp:,}")
        embed.add_field(
            name=f"Progress to level {progress.level + 1:,}",
            value=(
                f"{levels.progress_bar(progress.into_level, progress.level_span)}\n"
                f"{progress.into_level:,} / {progress.level_span:,} XP ({progress.to_next:,} XP to go)"
            ),
            inline=False,
        )
        await ctx.send(embed=embed)

    @commands.group(aliases=["lb", "top"], invoke_without_command=True)
    @commands.guild_only()
    @commands.cooldown(3, 10, commands.BucketType.member)  # a page is big: no spamming the channel with them
    async def leaderboard(self, ctx: commands.Context[Tally], page: Page = 1) -> None:
        """Show the server's members by XP, 10 a page; ties go to the lower user ID."""
        board = await self.bot.xp.board(ctx.guild.id)
        present = None if self.bot.settings_of(ctx.guild).show_departed else await self._present(ctx.guild, board)
        ranked = len(board) if present is None else len(present)
        if not ranked:
            await ctx.send("Nobody has earned XP in this server yet. Start chatting to top the board!")
            return
        pages = math.ceil(ranked / PAGE_SIZE)
        if page > pages:
            await ctx.send(only_pages(pages))
            return
        start = (page - 1) * PAGE_SIZE
        rows = board.page(start, PAGE_SIZE) if present is None else present[start : start + PAGE_SIZE]
        names = await self.bot.names_of(ctx.guild, [user_id for user_id, _ in rows])
        curve = self.bot.curve_of(ctx.guild)
        lines = [
            f"**#{start + i:,}** {plain(names[user_id], 40)} · level {curve.level_for(xp):,} · {xp:,} XP"
            for i, (user_id, xp) in enumerate(rows, start=1)
        ]
        embed = discord.Embed(title=f"Leaderboard: {ctx.guild.name}", description="\n".join(lines), colour=EMBED_COLOUR)
        embed.set_footer(text=f"Page {page:,} of {pages:,} · {ranked:,} members · {TIE_RULE}")
        await ctx.send(embed=embed)

    @leaderboard.command(name="coins")
    @commands.guild_only()
    @commands.cooldown(3, 10, commands.BucketType.member)
    async def leaderboard_coins(self, ctx: commands.Context[Tally], page: Page = 1) -> None:
        """Show the members with the most coins (the same as `richest`)."""
        await self.bot.xp.settle_coins(ctx.guild.id)  # invoke() skips the Economy cog's hooks
        await ctx.invoke(self.bot.get_command("richest"), page=page)

    async def _present(self, guild: discord.Guild, board: GuildBoard) -> list[tuple[int, int]]:
        """The board without members who left (``departed off``): one pass over it.

        The member list comes from the gateway once (``chunk``); Discord's
        join and leave events keep it current after that.
        """
        if not await self.bot.every_member(guild, within=10):
            raise MemberListPending
        return [(user_id, xp) for user_id, xp in board.page(0, len(board)) if guild.get_member(user_id) is not None]

    @commands.command()
    async def invite(self, ctx: commands.Context[Tally]) -> None:
        """The links that add Tally to a server: levels and coins only, or with moderation too."""
        application_id = self.bot.application_id
        await ctx.send(
            f"Levels, coins and reward roles: <{invite_url(application_id, LEVELS_PERMISSIONS)}>\n"
            f"Everything, with `kick` and `ban`: <{invite_url(application_id, EVERYTHING_PERMISSIONS)}>"
        )

    @commands.command()
    @commands.guild_only()
    async def prefix(self, ctx: commands.Context[Tally], *, new: str | None = None) -> None:
        """Show the prefix; `prefix <new>` or `prefix reset` changes it (Manage Server)."""
        current = self.bot.prefix_of(ctx.guild)
        if new is None:
            await ctx.send(f"My prefix here is `{current}` (mentioning me works too), e.g. `{current}level`.")
            return
        if not ctx.author.guild_permissions.manage_guild:
            raise commands.MissingPermissions(["manage_guild"])
        if new.lower() == "reset":
            await self.bot.server_settings.reset(ctx.guild.id, "prefix")
            await ctx.send(f"Prefix reset to `{self.bot.settings.default_prefix}`.")
            return
        try:
            await self.bot.server_settings.set(ctx.guild.id, "prefix", new)
        except SettingRefused as refused:
            await ctx.send(f"That prefix won't work: {refused}.")
            return
        await ctx.send(f"Prefix set to `{new}`: try `{new}level`. Mentioning me always works too.")


class TallyHelp(commands.HelpCommand):
    """Every command with its usage and one-line summary."""

    def get_destination(self) -> commands.Context:
        return self.context  # a TallyContext: the reply is cut to Discord's limits

    async def send_bot_help(self, mapping) -> None:
        await self._send_list("**Tally commands**", self.context.bot.commands)

    async def send_cog_help(self, cog: commands.Cog) -> None:
        """``help Economy``: the commands of one group, as the full list shows them."""
        await self._send_list(f"**{cog.qualified_name}**: {cog.description}", cog.get_commands())

    async def _send_list(self, title: str, commands_: list[commands.Command]) -> None:
        """One line per command, in as many messages of up to 2,000 characters as it takes."""
        prefix = self.context.clean_prefix
        pages = commands.Paginator(prefix=None, suffix=None, max_size=MAX_CONTENT)
        pages.add_line(title)
        for command in await self.filter_commands(commands_, sort=True):
            pages.add_line(cut(f"{invocation(prefix, command)}: {command.short_doc}", MAX_CONTENT))
        pages.add_line(f"Type `{prefix}help <command>` for more about one command.")
        for page in pages.pages:
            await self.get_destination().send(page)

    async def send_command_help(self, command: commands.Command) -> None:
        await self.get_destination().send(self._explain(command))

    async def send_group_help(self, group: commands.Group) -> None:
        prefix = self.context.clean_prefix
        lines = [self._explain(group)]
        lines += [f"{invocation(prefix, command)}: {command.short_doc}" for command in group.commands]
        await self.get_destination().send("\n".join(lines))

    def _explain(self, command: commands.Command) -> str:
        """Usage, aliases and the whole help text of one command."""
        text = invocation(self.context.clean_prefix, command)
        if command.aliases:
            text += f" (also: {', '.join(command.aliases)})"
        return f"{text}\n{command.help or ''}"

    async def command_not_found(self, string: str) -> str:
        return f"No command called {plain(string, 50)}."

    async def subcommand_not_found(self, command: commands.Command, string: str) -> str:
        return f"`{command.qualified_name}` has no subcommand called {plain(string, 50)}."


# -- the process --------------------------------------------------------------------


class RedactToken(logging.Filter):
    """Belt and braces: the token never reaches a log line, whoever logs it."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "[token]"), None
        return True


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactToken(settings.token))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # discord.py's DEBUG lines carry message contents and aiosqlite's every query:
    # Tally logs IDs, not content, so both stay at INFO or above.
    for noisy in ("discord", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


EXIT_OWNER_MUST_FIX = 2  # settings, token, intents or database: restarting will not help
EXIT_FAILED = 1  # something unexpected, or pending XP could not be saved at shutdown


async def run(settings: Settings) -> int:
    """Open the database, run the bot until a signal or a fatal error; the exit code.

    SIGINT and SIGTERM are handled from the first moment: one that arrives
    while the database opens or while Tally logs in still ends in a clean
    shutdown and exit code 0, never a traceback.
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    bot: Tally | None = None

    def stop() -> None:
        stopping.set()
        if bot is not None:
            asyncio.ensure_future(bot.close())

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    if settings.database_url and settings.database_path_given:
        log.info("DATABASE_URL and DATABASE_PATH are both set: DATABASE_URL wins")
    try:
        db = await Database.open(
            settings.database_url or settings.database_path,
            exclusive=True,
            shards=(settings.shard_count, settings.shard_ids),
            unsaved_folder=settings.database_path.parent,  # where XP a shutdown could not write is kept
        )
    except DatabaseRefused as exc:
        log.error("cannot use the database: %s", exc)
        return EXIT_OWNER_MUST_FIX
    log.info("using the %s", db.description)
    if not settings.database_url:
        warn_if_others_can_read(settings.database_path, "it holds every member's data")
    if stopping.is_set():  # a signal while the database was being checked
        await db.close()
        log.info("stopped before connecting to Discord")
        return 0
    bot = Tally(settings, db)
    code = 0
    try:
        if await log_in(bot, settings.token, stopping, settings.connect_timeout_seconds):
            await bot.connect()  # reconnects by itself after a dropped connection
        else:
            log.info("stopped while connecting to Discord")
    except discord.LoginFailure:
        log.error(PORTAL_TOKEN)
        code = EXIT_OWNER_MUST_FIX
    except discord.PrivilegedIntentsRequired:
        log.error("Discord refused the connection: %s", PORTAL_INTENTS)
        code = EXIT_OWNER_MUST_FIX
    except discord.ConnectionClosed as exc:  # Discord ended the session for good while running
        if exc.code == 4004:  # the token was reset in the portal
            log.error(PORTAL_TOKEN)
            code = EXIT_OWNER_MUST_FIX
        else:
            log.error("Discord closed the connection for good (close code %s: %s)", exc.code, exc.reason or "no reason")
            code = EXIT_FAILED
    except Exception:
        if not stopping.is_set():
            raise
        # closing mid-login pulls the connection from under discord.py: the stop was asked for
        log.info("stopped while connecting to Discord")
    finally:
        await bot.close()  # waits for the whole shutdown (pending XP saved first), whoever started it
    if bot.unsaved_at_shutdown and code != EXIT_OWNER_MUST_FIX:
        return EXIT_FAILED  # (a revoked token stays 2: restarting would not help)
    return code


RETRY_DELAYS = (1, 2, 5, 10, 30, 60)  # then every 60 s: a VPS that boots before its network recovers by itself


async def log_in(bot: Tally, token: str, stopping: asyncio.Event, timeout: float) -> bool:
    """Log in to Discord, trying again while it cannot be reached; False when a signal stopped the waiting.

    Each try may take ``timeout`` seconds (aiohttp alone would wait 300 on a
    network that accepts but never answers). Each failure is one line naming
    the cause and when the next try is. A token Discord rejects is not
    retried (LoginFailure goes to the caller).
    """
    for attempt in itertools.count():
        try:
            await asyncio.wait_for(bot.login(token), timeout)
            return True
        except discord.LoginFailure:
            raise
        except (OSError, TimeoutError, aiohttp.ClientError, discord.DiscordServerError) as exc:
            if stopping.is_set():  # a signal closed the connection under the try
                return False
            cause = unreachable(exc, timeout)
        await bot.http.close()  # its connector closes with it: the next try makes a new one, and a new session
        bot.http.connector = discord.utils.MISSING
        delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
        log.warning("cannot reach Discord (%s); trying again in %d s", cause, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        if stopping.is_set():
            return False
    raise AssertionError("unreachable")


def unreachable(exc: BaseException, timeout: float) -> str:
    """Why Discord could not be reached, in a few words for the owner."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, discord.DiscordServerError):
        return f"Discord answered {exc.status}: its side is failing"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its name does not resolve: no DNS, or no network yet"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "the TLS handshake failed: check the clock and any proxy in between"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"the connection failed: {exc.os_error.strerror or exc.os_error}"
    return f"{type(exc).__name__}: {exc}"[:200]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bot.py",
        description="Tally, a Discord bot for XP, levels and leaderboards. Without a subcommand: run the bot "
        "(settings come from .env; see .env.example).",
    )
    commands_ = parser.add_subparsers(dest="command", title="subcommands")
    copy = commands_.add_parser(
        "copy-data",
        help="copy every row of the configured database into an empty one, and verify it",
        description="Copy everything from the configured database (DATABASE_URL, else DATABASE_PATH) into an "
        "empty target, in batches with a progress bar, then verify row counts, XP and coin totals per server and "
        "ledger sums. On any failure the target is left empty and the source untouched. Stop the bot first: "
        "copy-data refuses a source a running Tally is using, where it can tell.",
    )
    copy.add_argument(
        "--to",
        required=True,
        metavar="TARGET",
        help="a postgresql://user:password@host:port/dbname URL, or a SQLite file path (the way back)",
    )
    saving = commands_.add_parser(
        "backup",
        help="a verified, dated copy of the database, also while the bot runs",
        description="Copy the configured database (DATABASE_URL, else DATABASE_PATH) into FOLDER as "
        "tally-YYYYMMDD-HHMMSS.db (SQLite's online backup, then its integrity check and row counts) or .dump "
        "(PostgreSQL: pg_dump's custom format, checked with pg_restore --list). Safe while Tally runs.",
    )
    saving.add_argument(
        "--to", type=Path, metavar="FOLDER", help="where backups go (default: backups beside the database)"
    )
    saving.add_argument(
        "--keep", type=_at_least_one, metavar="N", help="then remove all but the newest N backups there"
    )
    putting_back = commands_.add_parser(
        "restore",
        help="put a backup back in place of the database (stop the bot first)",
        description="Check FILE, keep the current database aside (SQLite: a copy beside it; PostgreSQL: a dump in "
        "the backup folder), then put FILE back. Refused while a Tally runs on the database.",
    )
    putting_back.add_argument("file", type=Path, metavar="FILE", help="a backup made by python bot.py backup")
    taking_out = commands_.add_parser(
        "export",
        help="one server's data (or every server's) as a JSON document or CSV files",
        description="Write a server's members (XP, level, last known name, first seen), coins and the ledger, "
        "cases with their earlier reasons, settings and role rewards: one JSON document (described in the "
        "README), or one CSV file per table in a folder. Safe while Tally runs; streams, so any size fits.",
    )
    taking_out.add_argument("--guild", type=_snowflake, metavar="ID", help="the server's ID (default: every server)")
    taking_out.add_argument("--format", choices=("json", "csv"), default="json", help="json (default) or csv")
    taking_out.add_argument(
        "--out", type=Path, metavar="PATH", help="the file (json) or folder (csv); default: tally-export-<ID>-<time>"
    )
    bringing_in = commands_.add_parser(
        "import",
        help="a server's levels from MEE6, DiscordLevelingSystem, LevelUp, Lurkr or a Tally export",
        description="Read FILE (the format is found from its content: " + imports.READS + ") and show what "
        "importing it into the server would change; with --apply, write it in one transaction, every change in "
        "the XP audit log. Stop the bot before --apply.",
    )
    bringing_in.add_argument("file", type=Path, metavar="FILE", help="the file, or a folder of MEE6 page files")
    bringing_in.add_argument("--guild", type=_snowflake, metavar="ID", required=True, help="the server's ID")
    bringing_in.add_argument("--apply", action="store_true", help="write it (without: a dry run that changes nothing)")
    bringing_in.add_argument("--dry-run", action="store_true", help="show what would change and stop (the default)")
    bringing_in.add_argument(
        "--mode",
        choices=("keep-higher", "replace", "add"),
        default="keep-higher",
        help="keep-higher (default): a member keeps the higher of the two; replace: the file's; add: both summed",
    )
    bringing_in.add_argument(
        "--by",
        choices=("xp", "level"),
        default="xp",
        help="xp (default): the file's total XP; level: the least XP of the file's level on this server's curve",
    )
    bringing_in.add_argument(
        "--include-settings", action="store_true", help="also apply the file's settings (XP range, role rewards, curve)"
    )
    return parser.parse_args(argv)


def _snowflake(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError("must be a Discord ID (a whole number, as Developer Mode's Copy ID gives)")
    return int(text)


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1")
    return int(text)


VERSION = "0.1.0"  # as pyproject.toml says


def warn_if_others_can_read(path: Path, why: str) -> None:
    """One warning when other users of the machine may read ``path`` (a missing file: nothing to say)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "%s can be read by other users of this machine (mode %s) and %s: chmod 600 %s",
            path.resolve(),
            oct(mode & 0o777)[2:],
            why,
            path,
        )


def main(argv: list[str] | None = None) -> None:
    os.umask(0o077)  # what Tally creates (the database, backups, exports) is for its own user alone
    args = parse_args(argv)
    env_file = Path.cwd() / ".env"
    load_dotenv(env_file)
    if args.command is not None:  # a tool: no bot, no Discord
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        try:
            database_url, database_path = database_target()
            curve = level_curve() if args.command in ("import", "export") else "linear"  # levels are theirs alone
        except ConfigError as exc:
            print(f"tally: configuration error: {exc}", file=sys.stderr)
            sys.exit(EXIT_OWNER_MUST_FIX)
        target = database_url or database_path
        if args.command == "copy-data":
            sys.exit(asyncio.run(copy_data(Database.open, target, args.to, sys.stderr)))
        if args.command == "import":
            if args.apply and args.dry_run:
                print("tally import: --apply and --dry-run: choose one", file=sys.stderr)
                sys.exit(EXIT_OWNER_MUST_FIX)
            request = imports.Request(
                args.file, args.guild, args.apply, args.mode, args.by, args.include_settings, curve
            )
            sys.exit(asyncio.run(imports.run(target, request, sys.stdout, sys.stderr)))
        if args.command == "export":
            sys.exit(asyncio.run(export.export(target, args.guild, args.format, args.out, sys.stderr, curve)))
        folder = getattr(args, "to", None) or backup.default_folder(target, database_path)
        if args.command == "backup":
            sys.exit(backup.backup(target, folder, args.keep, sys.stdout, sys.stderr))
        sys.exit(backup.restore(target, args.file, folder, sys.stdout, sys.stderr))
    try:
        settings = load_settings()
    except ConfigError as exc:
        lost = not env_file.is_file() and "DISCORD_TOKEN is missing" in str(exc)  # started from another folder?
        where = f" (there is no .env in {env_file.parent}: start Tally in its own folder)" if lost else ""
        print(f"tally: configuration error: {exc}{where}", file=sys.stderr)
        sys.exit(EXIT_OWNER_MUST_FIX)
    configure_logging(settings)
    warn_if_others_can_read(env_file, "it holds the token")
    log.info(
        "Tally %s, discord.py %s, Python %s; settings from %s",
        VERSION,
        discord.__version__,
        platform.python_version(),
        env_file if env_file.is_file() else f"the environment only (no .env in {env_file.parent})",
    )
    sys.exit(asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
