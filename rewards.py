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

import logging

import discord

from chat import plain, safe_send
from server_settings import ServerSettings

log = logging.getLogger(__name__)


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
    ) -> list[discord.Role]:
        """Give and take reward roles for ``level``; the roles newly given.

        ``tell`` is where a problem is reported when the server has no
        announcement or mod-log channel of its own (the level-up's channel).
        """
        if not server.rewards:
            return []
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
            return []
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
            return []
        except discord.HTTPException as exc:
            log.warning(
                "could not change reward roles of user %s in guild %s: HTTP %s", member.id, guild.id, exc.status
            )
            return []
        return given

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
