"""Each server's settings: one model, read from memory, written through at once.

A server's settings are the defaults from ``.env`` (config.Settings) with
what its admins changed through ``!settings`` laid over them. The changes are
stored one row per setting (``guild_settings``: name and value as text) and
read once at start-up into a ``ServerSettings`` per server, so the message
path reads a dict, never the database. A change is written to the database
first and only then to memory: if the write fails, nothing changed.

Every setting is one ``Setting`` below: its name as members type it, how a
member's text becomes the stored value (or one line saying what is wrong),
and how the value reads back. A stored value this Tally cannot read (a file
edited by hand, a newer Tally's value) is logged once and the default used.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import discord

from chat import MAX_CONTENT, cut, plain
from config import Settings, prefix_problem
from db import Database
from levels import CURVE_NAMES

log = logging.getLogger(__name__)

MAX_XP_PER_MESSAGE = 1000
MAX_COOLDOWN_SECONDS = 86400
MAX_TEMPLATE_LENGTH = 500
PLACEHOLDERS = ("mention", "name", "level", "old_level", "xp", "rank", "server", "role")
DEFAULT_LEVELUP_MESSAGE = "{mention} reached level {level}!"
DEFAULT_LEVELUP_ROLE_MESSAGE = "{mention} reached level {level} and earned {role}!"
MAX_TARGETS = 50  # no-XP channels and roles, and multipliers, each
MULTIPLIER_RULE = (
    "a channel's multiplier and a role's multiply; when a member has several roles with a multiplier, "
    "the highest applies; XP is rounded to the nearest whole number, and 0 earns nothing"
)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """One server's settings, defaults included. Frozen: a change makes a new one."""

    prefix: str
    xp_min: int  # XP a message earns: drawn uniformly from xp_min..xp_max
    xp_max: int
    cooldown: int  # seconds between two messages that earn XP
    curve: str  # a name from levels.CURVE_NAMES
    levelup: str  # where level-ups are announced: "here", "dm", "off", or "channel"
    levelup_channel: int | None  # with levelup == "channel"
    levelup_message: str
    levelup_role_message: str
    modlog: int | None  # the channel new cases are posted in
    # Channels and roles whose messages earn nothing (a thread follows its parent channel).
    noxp_channels: frozenset[int] = frozenset()
    noxp_roles: frozenset[int] = frozenset()
    # XP multipliers in tenths (15 is x1.5, 0 earns nothing), per channel and per role.
    channel_multipliers: dict[int, int] = dataclasses.field(default_factory=dict)
    role_multipliers: dict[int, int] = dataclasses.field(default_factory=dict)
    # Role rewards: (level, role ID) pairs in level order; several roles may share a level.
    rewards: tuple[tuple[int, int], ...] = ()
    rewards_mode: str = "stack"  # "stack": keep every reward earned; "replace": only the highest level's
    rewards_on_rejoin: bool = True  # a member who comes back gets their reward roles again
    show_departed: bool = True  # members who left stay on the leaderboard under their last known name
    levelup_admin: bool = False  # level-ups an admin's !xp change causes are announced like chat level-ups
    changed: frozenset[str] = frozenset()  # the settings this server set itself

    def reward_roles(self, level: int) -> set[int]:
        """The reward roles a member at ``level`` should hold, by the server's mode."""
        reached = [(at, role_id) for at, role_id in self.rewards if at <= level]
        if self.rewards_mode == "replace" and reached:
            top = reached[-1][0]
            return {role_id for at, role_id in reached if at == top}
        return {role_id for _, role_id in reached}

    @property
    def has_xp_rules(self) -> bool:
        return bool(self.noxp_channels or self.noxp_roles or self.channel_multipliers or self.role_multipliers)

    def xp_for(self, amount: int, channel_id: int, role_ids: Iterable[int]) -> int:
        """What a message earns after no-XP channels and roles and the multipliers (MULTIPLIER_RULE).

        ``channel_id`` is the message's channel, or a thread's parent; ``role_ids`` the member's roles.
        """
        if channel_id in self.noxp_channels:
            return 0
        channel_tenths, role_tenths = self.channel_multipliers.get(channel_id, 10), 10
        if self.noxp_roles or self.role_multipliers:
            role_ids = tuple(role_ids)
            if not self.noxp_roles.isdisjoint(role_ids):
                return 0
            # the highest multiplier among the member's roles that have one (0 reads as none: 0 earns nothing)
            role_tenths = max(map(self.role_multipliers.get, role_ids, itertools.repeat(-1)), default=-1)
            if role_tenths < 0:
                role_tenths = 10
        return (amount * channel_tenths * role_tenths + 50) // 100  # to the nearest whole XP, halves up


class SettingRefused(Exception):
    """A value a member typed cannot be this setting; the message is one line for them."""


@dataclass(frozen=True)
class Setting:
    name: str
    summary: str  # what it is, for !settings <name>
    example: str  # a value to show in the usage line
    read: Callable[[str], dict]  # stored text -> ServerSettings fields (raises ValueError)
    show: Callable[[ServerSettings], str]  # the value as members read it


def _whole(text: str, low: int, high: int, what: str) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{what} must be a whole number from {low:,} to {high:,}")
    return int(text)


def _read_xp(text: str) -> dict:
    low, _, high = text.partition("-")
    what = "XP per message"
    xp_min = _whole(low.strip(), 1, MAX_XP_PER_MESSAGE, what)
    xp_max = _whole(high.strip(), 1, MAX_XP_PER_MESSAGE, what) if high else xp_min
    if xp_max < xp_min:
        raise ValueError("a range of XP goes from the lower number to the higher, e.g. 15-25")
    return {"xp_min": xp_min, "xp_max": xp_max}


def _show_xp(s: ServerSettings) -> str:
    return f"{s.xp_min}" if s.xp_min == s.xp_max else f"{s.xp_min}-{s.xp_max}"


def _read_prefix(text: str) -> dict:
    if problem := prefix_problem(text):
        raise ValueError(problem)
    return {"prefix": text}


def _read_curve(text: str) -> dict:
    if text not in CURVE_NAMES:
        raise ValueError(f"the level curve is one of {', '.join(CURVE_NAMES)}")
    return {"curve": text}


def _read_levelup(text: str) -> dict:
    if text in ("here", "dm", "off"):
        return {"levelup": text, "levelup_channel": None}
    return {"levelup": "channel", "levelup_channel": _whole(text, 1, 2**63 - 1, "a channel")}


def _show_levelup(s: ServerSettings) -> str:
    return f"<#{s.levelup_channel}>" if s.levelup == "channel" else s.levelup


def _targets(text: str) -> list[tuple[str, int, str]]:
    """``channel:1=1.5,role:2`` as ``[("channel", 1, "1.5"), ("role", 2, "")]``."""
    found = []
    for item in filter(None, text.split(",")):
        target, _, value = item.partition("=")
        kind, _, ident = target.partition(":")
        if kind not in ("channel", "role"):
            raise ValueError(f"{kind!r} is neither a channel nor a role")
        found.append((kind, _whole(ident, 1, 2**63 - 1, f"a {kind}"), value))
    if len(found) > MAX_TARGETS * 2:
        raise ValueError(f"at most {MAX_TARGETS} channels and {MAX_TARGETS} roles")
    return found


def _read_noxp(text: str) -> dict:
    targets = _targets(text)
    return {
        "noxp_channels": frozenset(ident for kind, ident, _ in targets if kind == "channel"),
        "noxp_roles": frozenset(ident for kind, ident, _ in targets if kind == "role"),
    }


def noxp_text(channels: frozenset[int], roles: frozenset[int]) -> str:
    """No-XP channels and roles as stored."""
    return ",".join([f"channel:{c}" for c in sorted(channels)] + [f"role:{r}" for r in sorted(roles)])


def parse_multiplier(text: str) -> int:
    """A multiplier a member typed (``1.5``) in tenths (15); ValueError unless 0 to 10 in steps of 0.1."""
    try:
        factor = Decimal(text.strip().lstrip("x×"))
    except InvalidOperation:
        factor = Decimal("NaN")
    if not factor.is_finite() or not 0 <= factor <= 10 or (factor * 10) % 1:
        raise ValueError("a multiplier is a number from 0 to 10 in steps of 0.1, such as 1.5 (0 earns nothing)")
    return int(factor * 10)


def factor_text(tenths: int) -> str:
    return f"{tenths // 10}" if tenths % 10 == 0 else f"{tenths // 10}.{tenths % 10}"


def _read_multipliers(text: str) -> dict:
    fields: dict[str, dict[int, int]] = {"channel_multipliers": {}, "role_multipliers": {}}
    for kind, ident, value in _targets(text):
        fields[f"{kind}_multipliers"][ident] = parse_multiplier(value)
    return fields


def multipliers_text(channels: dict[int, int], roles: dict[int, int]) -> str:
    """Multipliers as stored."""
    return ",".join(
        [f"channel:{c}={factor_text(t)}" for c, t in sorted(channels.items())]
        + [f"role:{r}={factor_text(t)}" for r, t in sorted(roles.items())]
    )


MAX_REWARDS = 50
MAX_LEVEL = 1_000_000


def _read_rewards(text: str) -> dict:
    rewards = set()
    for item in filter(None, text.split(",")):
        level, _, role = item.partition(":")
        rewards.add((_whole(level, 0, MAX_LEVEL, "a level"), _whole(role, 1, 2**63 - 1, "a role")))
    if len(rewards) > MAX_REWARDS:
        raise ValueError(f"a server can have at most {MAX_REWARDS} reward roles")
    if len({role for _, role in rewards}) != len(rewards):
        raise ValueError("a role can be the reward of one level only")
    return {"rewards": tuple(sorted(rewards))}


def rewards_text(rewards: Iterable[tuple[int, int]]) -> str:
    """Role rewards as stored."""
    return ",".join(f"{level}:{role_id}" for level, role_id in sorted(rewards))


def _show_rewards(s: ServerSettings) -> str:
    return ", ".join(f"level {level:,}: <@&{role_id}>" for level, role_id in s.rewards) or "none"


def _read_choice(field: str, choices: dict[str, object]) -> Callable[[str], dict]:
    def read(text: str) -> dict:
        if text not in choices:
            raise ValueError(f"it is one of {', '.join(choices)}")
        return {field: choices[text]}

    return read


def _switch(field: str) -> tuple[Callable[[str], dict], Callable[[ServerSettings], str]]:
    """How an on/off setting is read and shown."""
    return _read_choice(field, {"on": True, "off": False}), lambda s: "on" if getattr(s, field) else "off"


def _show_noxp(s: ServerSettings) -> str:
    shown = [f"<#{c}>" for c in sorted(s.noxp_channels)] + [f"<@&{r}>" for r in sorted(s.noxp_roles)]
    return ", ".join(shown) or "none"


def _show_multipliers(s: ServerSettings) -> str:
    shown = [f"<#{c}> ×{factor_text(t)}" for c, t in sorted(s.channel_multipliers.items())]
    shown += [f"<@&{r}> ×{factor_text(t)}" for r, t in sorted(s.role_multipliers.items())]
    return ", ".join(shown) or "none"


def template_problem(text: str, *, with_role: bool) -> str | None:
    """Why ``text`` cannot be a level-up template, or None when it can."""
    allowed = PLACEHOLDERS if with_role else tuple(p for p in PLACEHOLDERS if p != "role")
    listed = ", ".join(f"{{{name}}}" for name in allowed)
    if len(text) > MAX_TEMPLATE_LENGTH:
        return f"a template can be at most {MAX_TEMPLATE_LENGTH} characters long; placeholders: {listed}"
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(text)]
    except ValueError:
        return f"a {{ or }} is not closed (write {{{{ or }}}} for the character itself); placeholders: {listed}"
    for name, spec, conversion in fields:
        if name is None:
            continue
        if name not in allowed or spec or conversion:
            if name == "role" and not with_role:
                return "`{role}` only works in levelup-role-message (a level-up that earns a reward role)"
            return f"`{{{name}}}` is not a placeholder; placeholders: {listed}"
    return None


def _read_template(field: str, *, with_role: bool) -> Callable[[str], dict]:
    def read(text: str) -> dict:
        if problem := template_problem(text, with_role=with_role):
            raise ValueError(problem)
        return {field: text}

    return read


def _read_channel(field: str) -> Callable[[str], dict]:
    def read(text: str) -> dict:
        return {field: _whole(text, 1, 2**63 - 1, "a channel")}

    return read


SETTINGS: dict[str, Setting] = {
    setting.name: setting
    for setting in (
        Setting("prefix", "The command prefix (up to 5 characters).", "?", _read_prefix, lambda s: f"`{s.prefix}`"),
        Setting(
            "xp",
            "XP a message earns: a number, or a range to draw from (15-25 draws uniformly, as MEE6 does).",
            "15-25",
            _read_xp,
            _show_xp,
        ),
        Setting(
            "cooldown",
            f"Seconds before a member's next message earns XP again (0 to {MAX_COOLDOWN_SECONDS:,}).",
            "60",
            lambda text: {"cooldown": _whole(text, 0, MAX_COOLDOWN_SECONDS, "the cooldown")},
            lambda s: f"{s.cooldown} s",
        ),
        Setting("curve", "The level curve: linear or mee6.", "mee6", _read_curve, lambda s: s.curve),
        Setting(
            "levelup",
            "Where level-ups are announced: here (where it happened), a #channel, dm, or off.",
            "#level-ups",
            _read_levelup,
            _show_levelup,
        ),
        Setting(
            "levelup-message",
            "The level-up announcement. Placeholders: " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS[:-1]) + ".",
            "GG {mention}, level {level}!",
            _read_template("levelup_message", with_role=False),
            lambda s: plain(s.levelup_message, MAX_TEMPLATE_LENGTH),
        ),
        Setting(
            "levelup-role-message",
            "The announcement of a level-up that earns a reward role; {role} names it.",
            "{mention} is now {role}!",
            _read_template("levelup_role_message", with_role=True),
            lambda s: plain(s.levelup_role_message, MAX_TEMPLATE_LENGTH),
        ),
        Setting(
            "levelup-admin",
            "on: a level-up from an admin's !xp give or set is announced like one earned by chatting; "
            "off: only the admin's reply says so.",
            "on",
            *_switch("levelup_admin"),
        ),
        Setting(
            "modlog",
            "The channel new cases are posted in, or off.",
            "#mod-log",
            _read_channel("modlog"),
            lambda s: f"<#{s.modlog}>" if s.modlog else "off",
        ),
        Setting(
            "noxp",
            "Channels and roles whose messages earn no XP (a thread follows its channel): noxp add|remove <channel|role>.",
            "add #bot-commands",
            _read_noxp,
            _show_noxp,
        ),
        Setting(
            "multipliers",
            f"XP multipliers per channel or role, 0 to 10 in steps of 0.1: multipliers <channel|role> <factor|reset>; "
            f"{MULTIPLIER_RULE}.",
            "@Boosters 1.5",
            _read_multipliers,
            _show_multipliers,
        ),
        Setting(
            "departed",
            "on: members who left stay on the leaderboard under their last known name; off: only members still here.",
            "off",
            *_switch("show_departed"),
        ),
        Setting(
            "rewards",
            "Roles members earn at a level: rewards add <level> <role>, rewards remove <level|role>.",
            "add 10 @Regulars",
            _read_rewards,
            _show_rewards,
        ),
        Setting(
            "rewards-mode",
            "stack (keep every reward role earned) or replace (keep only the highest level's).",
            "replace",
            _read_choice("rewards_mode", {"stack": "stack", "replace": "replace"}),
            lambda s: s.rewards_mode,
        ),
        Setting(
            "rewards-on-rejoin",
            "on: a member who leaves and comes back gets their reward roles again; off (servers with verification).",
            "off",
            *_switch("rewards_on_rejoin"),
        ),
    )
}


def defaults(settings: Settings) -> ServerSettings:
    """A server's settings before it changes any: the defaults from .env."""
    return ServerSettings(
        prefix=settings.default_prefix,
        xp_min=settings.xp_per_message,
        xp_max=settings.xp_per_message,
        cooldown=settings.xp_cooldown_seconds,
        curve=settings.level_curve,
        levelup="here",
        levelup_channel=None,
        levelup_message=DEFAULT_LEVELUP_MESSAGE,
        levelup_role_message=DEFAULT_LEVELUP_ROLE_MESSAGE,
        modlog=None,
    )


def _overlay(base: ServerSettings, stored: dict[str, str]) -> ServerSettings:
    """``base`` with stored settings laid over it; ValueError when a value cannot be read."""
    fields: dict = {}
    for name, value in stored.items():
        fields.update(SETTINGS[name].read(value))
    return dataclasses.replace(base, **fields, changed=frozenset(stored))


class ServerSettingsCache:
    """Every server's settings in memory, loaded once, changed through ``set`` and ``reset``."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.defaults = defaults(settings)
        self._stored: dict[int, dict[str, str]] = {}  # what each server changed, as stored
        self._servers: dict[int, ServerSettings] = {}
        self._changing: dict[int, asyncio.Lock] = {}  # one change at a time per server: edits read, then write

    async def load(self) -> None:
        """Read every server's stored settings (at start-up, before the gateway connects)."""
        for guild_id, stored in (await self.db.stored_settings()).items():
            readable = {}
            for name, value in sorted(stored.items()):
                if name not in SETTINGS:
                    log.warning("guild %s has a setting this Tally does not know (%r); ignoring it", guild_id, name)
                    continue
                try:
                    SETTINGS[name].read(value)
                except ValueError as exc:
                    log.warning("guild %s: the stored %s cannot be read (%s); using the default", guild_id, name, exc)
                    continue
                readable[name] = value
            self._keep(guild_id, readable)

    def _keep(self, guild_id: int, stored: dict[str, str]) -> ServerSettings:
        self._stored[guild_id] = stored
        self._servers[guild_id] = current = _overlay(self.defaults, stored)
        return current

    def of(self, guild_id: int | None) -> ServerSettings:
        """A server's settings (the defaults for a server that changed none, and for DMs)."""
        if guild_id is None:
            return self.defaults
        return self._servers.get(guild_id, self.defaults)

    async def set(self, guild_id: int, name: str, value: str) -> ServerSettings:
        """Check, store, then keep a new value; SettingRefused (changing nothing) when it cannot be one."""
        return await self.edit(guild_id, name, lambda current: value)

    async def reset(self, guild_id: int, name: str) -> ServerSettings:
        """Back to the default from .env."""
        return await self.edit(guild_id, name, lambda current: None)

    async def edit(self, guild_id: int, name: str, change: Callable[[ServerSettings], str | None]) -> ServerSettings:
        """Store what ``change`` makes of the current settings (None: the default) and keep it.

        One change at a time per server, so two admins adding a no-XP channel
        each at once both get theirs. ``change`` may raise SettingRefused.
        """
        async with self._changing.setdefault(guild_id, asyncio.Lock()):
            value = change(self.of(guild_id))
            stored = dict(self._stored.get(guild_id, {}))
            if value is None:
                await self.db.reset_setting(guild_id, name)
                stored.pop(name, None)
                return self._keep(guild_id, stored)
            try:
                SETTINGS[name].read(value)
            except ValueError as exc:
                raise SettingRefused(str(exc)) from None
            await self.db.set_setting(guild_id, name, value)
            return self._keep(guild_id, {**stored, name: value})


def render(
    template: str,
    member: discord.Member,
    guild: discord.Guild,
    old_level: int,
    level: int,
    xp: int,
    rank: int | None,
    roles: list[discord.Role] = (),
) -> str:
    """A level-up template filled in, within Discord's message limit.

    Names are escaped, so a member called ``@everyone`` or ``**x**`` reads as
    typed; what may ping is decided by the allowed mentions of the message.
    """
    values = {
        "mention": member.mention,
        "name": plain(member.display_name),
        "level": f"{level:,}",
        "old_level": f"{old_level:,}",
        "xp": f"{xp:,}",
        "rank": f"#{rank:,}" if rank else "unranked",
        "server": plain(guild.name),
        "role": ", ".join(plain(role.name) for role in roles),
    }
    return cut(template.format_map(values), MAX_CONTENT)
