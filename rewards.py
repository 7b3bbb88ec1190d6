"""Role rewards: a member's reward roles follow their level, in both directions.

``align`` gives and takes reward roles so that a member holds exactly those
their level earns under the server's mode (``stack``: every reward reached;
``replace``: only the highest level's). It checks what Discord would refuse
before asking (every 403 counts toward Discord's invalid-request limit),
changes the member's roles in one request, and when a role can no longer be
given (deleted, above Tally's highest role, managed by an integration, or
Tally lost Manage Roles) tells the server once instead of failing silently
or on every level-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, NamedTuple

import discord

from chat import plain, safe_send
from db import SyncState
from server_settings import ServerSettings

if TYPE_CHECKING:
    from bot import Tally

log = logging.getLogger(__name__)

PROGRESS_EVERY = 3.0  # seconds between two edits of a sync's progress message (and saves of its state)


class Aligned(NamedTuple):
    """What ``align`` did to one member."""

    given: list[discord.Role]  # reward roles newly given
    changed: bool  # whether the member's roles changed
    failed: bool  # whether a change was needed and Discord or the hierarchy would not allow it


def role_problem(guild: discord.Guild, role_id: int) -> str | None:
    """Why Tally cannot give or take this role, or None when it can."""
    role = guild.get_role(role_id)
    if role is None:
        return "the role no longer exists"
    if role.is_default():
        return "@everyone is every member's role already"
    if role.managed:
        return "it is managed by an integration (a bot or a subscription), which only that integration can give"
    me = guild.me
    if not me.guild_permissions.manage_roles:
        return "I need the Manage Roles permission"
    if role >= me.top_role:
        return "it is not below my highest role: move my role above it in Server Settings > Roles"
    return None


class RoleRewards:
    """Keeps reward roles in line for one bot; remembers which problems it already reported."""

    def __init__(self) -> None:
        self._reported: set[tuple[int, int, str]] = set()  # (guild, role, problem) told once a run

    async def align(
        self,
        member: discord.Member,
        level: int,
        server: ServerSettings,
        *,
        reason: str,
        tell: discord.abc.Messageable | None = None,
    ) -> Aligned:
        """Give and take reward roles for ``level``.

        ``tell`` is where a problem is reported when the server has no
        announcement or mod-log channel of its own (the level-up's channel).
        """
        if not server.rewards:
            return Aligned([], False, False)
        guild = member.guild
        all_rewards = {role_id for _, role_id in server.rewards}
        held = {role.id for role in member.roles}
        wanted = server.reward_roles(level)
        to_add, to_remove = wanted - held, (held & all_rewards) - wanted
        problems = {role_id: role_problem(guild, role_id) for role_id in to_add | to_remove}
        blocked = {role_id: problem for role_id, problem in problems.items() if problem}
        if blocked:
            await self._report(guild, server, blocked, tell)
        to_add -= blocked.keys()
        to_remove -= blocked.keys()
        if not to_add and not to_remove:
            return Aligned([], False, bool(blocked))
        given = [guild.get_role(role_id) for role_id in sorted(to_add)]
        try:  # one request, whatever the number of roles
            if len(to_add) + len(to_remove) == 1:
                if given:
                    await member.add_roles(*given, reason=reason)
                else:
                    await member.remove_roles(guild.get_role(next(iter(to_remove))), reason=reason)
            else:
                keep = [role for role in member.roles if not role.is_default() and role.id not in to_remove]
                await member.edit(roles=keep + given, reason=reason)
        except discord.Forbidden:  # a change Tally could not foresee (roles moved meanwhile)
            await self._report(guild, server, dict.fromkeys(to_add | to_remove, "Discord refused it"), tell)
            return Aligned([], False, True)
        except discord.NotFound:  # the member left meanwhile
            return Aligned([], False, False)
        except discord.HTTPException as exc:
            log.warning(
                "could not change reward roles of user %s in guild %s: HTTP %s", member.id, guild.id, exc.status
            )
            return Aligned([], False, True)
        return Aligned(given, True, bool(blocked))

    async def _report(
        self,
        guild: discord.Guild,
        server: ServerSettings,
        blocked: dict[int, str],
        tell: discord.abc.Messageable | None,
    ) -> None:
        new = {
            role_id: problem
            for role_id, problem in blocked.items()
            if (guild.id, role_id, problem) not in self._reported
        }
        if not new:
            return
        self._reported.update((guild.id, role_id, problem) for role_id, problem in new.items())
        for role_id, problem in new.items():
            log.warning("guild %s: cannot give or take reward role %s: %s", guild.id, role_id, problem)
        channel = None
        if server.levelup == "channel":
            channel = guild.get_channel(server.levelup_channel)
        if channel is None and server.modlog:
            channel = guild.get_channel(server.modlog)
        channel = channel or tell
        if channel is None:
            return
        lines = [
            f"I can't give or take the reward role <@&{role_id}> ({plain(problem, 200)})."
            for role_id, problem in sorted(new.items())
        ]
        lines.append("Fix it, or remove the reward with `rewards remove`; I will say this once.")
        await safe_send(channel, "\n".join(lines))


def _counted(state: SyncState, member: discord.Member, aligned: Aligned) -> SyncState:
    """The sync's state once ``member`` is done."""
    return state._replace(
        after_user=member.id,
        done=state.done + 1,
        changed=state.changed + aligned.changed,
        failed=state.failed + aligned.failed,
    )


class RewardSyncs:
    """``!rewards sync``: every member's reward roles in line with their level, a server at a time.

    Members go in user ID order; how far a sync got is saved every few
    seconds (and when it is stopped), so a restart resumes it, editing the
    same progress message. Discord's rate limits are honoured by discord.py:
    it waits when a route's bucket is empty (the X-RateLimit headers) and
    after a 429 for its retry_after, so the sync goes as fast as Discord
    allows, one request per member whose roles change.
    """

    def __init__(self, bot: Tally) -> None:
        self.bot = bot
        self.running: dict[int, asyncio.Task[None]] = {}

    async def start(self, guild: discord.Guild, channel_id: int, started_by: int) -> SyncState | None:
        """Start a sync of the server; None when one is running there already."""
        state = await self.bot.db.start_sync(guild.id, channel_id, started_by, int(time.time()))
        if state is None:
            return None
        self._run(guild, state)
        return state

    def resume(self, guild: discord.Guild, state: SyncState) -> None:
        """Go on with a sync a restart interrupted (unless it already runs)."""
        if guild.id not in self.running:
            log.info("resuming the reward role sync of guild %s after member %s", guild.id, state.after_user)
            self._run(guild, state)

    def _run(self, guild: discord.Guild, state: SyncState) -> None:
        task = asyncio.create_task(self._sync(guild, state), name=f"tally-rewards-sync-{guild.id}")
        self.running[guild.id] = task
        task.add_done_callback(lambda _: self.running.pop(guild.id, None))

    async def stop(self) -> None:
        """Stop every sync, their progress saved (at shutdown)."""
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _sync(self, guild: discord.Guild, state: SyncState) -> None:
        bot = self.bot
        channel = guild.get_channel(state.channel_id)
        message = channel.get_partial_message(state.message_id) if channel and state.message_id else None
        try:
            while not await bot.every_member(guild, within=40):  # Discord allows one request per 30 s
                log.info("guild %s: asking again for the member list to sync reward roles", guild.id)
            members = sorted((m for m in guild.members if not m.bot and m.id > state.after_user), key=lambda m: m.id)
            board = await bot.xp.board(guild.id)
            total = state.done + len(members)
            message = await self._progress(channel, message, state, total)
            state = state._replace(message_id=message.id if message else None)
            await bot.db.save_sync(state)
            last = time.monotonic()
            for member in members:
                server = bot.settings_of(guild)  # rewards changed meanwhile: the new ones
                level = bot.curve_of(guild).level_for(board.xp_of(member.id))
                change = asyncio.ensure_future(
                    bot.rewards.align(member, level, server, reason="!rewards sync", tell=channel)
                )
                try:
                    aligned = await asyncio.shield(change)
                except asyncio.CancelledError:  # a shutdown: the member's request finishes and counts first
                    with contextlib.suppress(Exception):
                        state = _counted(state, member, await asyncio.wait_for(change, 5))
                    raise
                state = _counted(state, member, aligned)
                if time.monotonic() - last >= PROGRESS_EVERY:
                    await bot.db.save_sync(state)
                    message = await self._progress(channel, message, state, total)
                    last = time.monotonic()
        except asyncio.CancelledError:  # a shutdown: keep how far it got, the next start goes on
            await asyncio.shield(bot.db.save_sync(state))
            raise
        except Exception:
            log.exception("the reward role sync of guild %s stopped; it resumes at the next start", guild.id)
            await bot.db.save_sync(state)
            return
        await bot.db.end_sync(guild.id)
        failed = f", {state.failed:,} could not be changed (see above)" if state.failed else ""
        summary = f"Reward roles synced: {state.done:,} members checked, {state.changed:,} changed{failed}."
        await self._progress(channel, message, state, state.done, summary)

    async def _progress(
        self,
        channel: discord.abc.Messageable | None,
        message: discord.PartialMessage | discord.Message | None,
        state: SyncState,
        total: int,
        text: str | None = None,
    ) -> discord.PartialMessage | discord.Message | None:
        """Post, or edit in place, the progress message: done, to do, failed."""
        text = (
            text or f"Syncing reward roles: {state.done:,} done, {total - state.done:,} to do, {state.failed:,} failed."
        )
        if channel is None:
            return message
        try:
            if message is None:
                return await channel.send(text)
            await message.edit(content=text)
        except discord.NotFound:  # the progress message was deleted: a new one
            return await channel.send(text)
        except discord.HTTPException as exc:
            log.warning("could not show the reward sync's progress in channel %s: HTTP %s", channel.id, exc.status)
        return message
