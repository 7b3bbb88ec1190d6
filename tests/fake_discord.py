"""A small fake Discord: enough Gateway and REST API v10 for discord.py and Tally.

The server runs on 127.0.0.1 inside the test's event loop. The real ``bot.py``
connects to it through ``tests/launcher.py``. Payloads follow Discord's
documented shapes (snowflakes as strings, ISO timestamps, permissions as
strings), so behaviour that passes here should pass on the real Discord.

What it speaks
  Gateway: HELLO, IDENTIFY (token and privileged-intent checks, close codes
  4004 and 4014), HEARTBEAT/ACK, READY, GUILD_CREATE (``large`` above
  IDENTIFY's ``large_threshold``; its member list: see ``guild_create_members``),
  MESSAGE_CREATE (with ``member`` beside ``author``, and content stripped
  without the Message Content intent), MESSAGE_UPDATE (the whole message, with
  MESSAGE_CREATE's extra fields), REQUEST_GUILD_MEMBERS -> GUILD_MEMBERS_CHUNK
  (up to 1,000 members a chunk, ``chunk_index``/``chunk_count`` over them; a
  prefix ``query`` or ``user_ids`` return at most 100; the whole member list,
  ``query`` "", needs the GUILD_MEMBERS intent, else no answer, and with
  ``limit`` 0 may be asked once per guild every 30 s, else RATE_LIMITED), RESUME
  with replay of missed events (INVALID_SESSION for an unknown session or a
  wrong token), and ``zlib-stream`` or ``zstd-stream`` transport compression as
  the client asks in the query string. :meth:`FakeDiscord.revoke_token` plays the
  owner resetting the token in the Developer Portal: live sockets close with
  4004 and REST answers 401.
  Sharding: GET /gateway/bot recommends ``shard_count``; IDENTIFY's ``shard`` is
  checked (4010 Invalid shard; 4011 Sharding required below ``shard_count``);
  each session gets only its shard's guilds, ``(guild_id >> 22) % num_shards``,
  and their events; DMs go to shard 0.
  REST: /users/@me, /oauth2/applications/@me, posting messages (with Discord's
  permission rules: 50001/50013, and its documented message limits, refused
  with 400/50035 and Discord's nested ``errors``: content up to 2,000
  characters; up to 10 embeds; per embed a title up to 256, a description up
  to 4,096, up to 25 fields, each with a name (up to 256) and a value (up to
  1,024), footer text up to 2,048, author name up to 256; and up to 6,000 of
  those characters across all of a message's embeds; see
  :func:`message_problems`), editing the bot's own messages (PATCH
  /channels/{channel}/messages/{message}: ``content``, ``embeds``,
  ``allowed_mentions``; 200 with the message, ``edited_timestamp`` set, and
  MESSAGE_UPDATE; 10003 Unknown Channel, 50001 Missing Access, 10008 Unknown
  Message, 50005 for another author's message, 50006 for an edit to nothing,
  and the same limits as posting), creating DM channels, fetching members,
  kicks and bans, and changing a member's roles: PUT/DELETE
  /guilds/{guild}/members/{user}/roles/{role} (204) and PATCH
  /guilds/{guild}/members/{user} with ``roles`` (replacing them) and ``nick``
  (200 with the member), with Discord's checks and errors: 10004 Unknown Guild,
  10007 Unknown Member, 10011 Unknown Role, 403/50013 without Manage Roles, for
  a role at or above the bot's highest, a managed role or @everyone.
  Each change dispatches GUILD_MEMBER_UPDATE (GUILD_MEMBERS intent) to the
  guild's shard; a change to nothing dispatches nothing.
  Every other route answers 404 and is listed in ``unknown_routes``.
  Rate limits: :meth:`FakeDiscord.limit` limits a route bucket per guild or
  channel, its major parameter (or every request, "global"); over it, 429
  with Discord's body and headers (``Retry-After``, ``X-RateLimit-*``,
  ``X-RateLimit-Scope``), and under it the
  ``X-RateLimit-*`` headers discord.py reads to wait before it is refused.
  Every answer carries ``Via: 1.1 google``, as Discord's do.
  Faults: :meth:`FakeDiscord.fail` answers a route with a 5xx, :meth:`FakeDiscord.hang`
  never answers it, :meth:`FakeDiscord.drop_connection` cuts every gateway socket
  (the client RESUMEs), :meth:`FakeDiscord.invalidate_sessions` ends every session
  with INVALID_SESSION (the client IDENTIFYs anew; what was said meanwhile is lost,
  as on Discord), and :meth:`FakeDiscord.stop` then ``start(port)`` is Discord away
  and back.
  World changes made in Discord by others: :meth:`FakeDiscord.member_join`
  (GUILD_MEMBER_ADD), :meth:`FakeDiscord.member_leave` (GUILD_MEMBER_REMOVE),
  :meth:`FakeDiscord.update_member` (GUILD_MEMBER_UPDATE),
  :meth:`FakeDiscord.delete_role` (GUILD_ROLE_DELETE), and
  :meth:`FakeDiscord.update_roles` / :meth:`FakeDiscord.move_role` after a test
  changed roles directly (GUILD_ROLE_UPDATE, or GUILD_ROLE_CREATE for a role
  added while the bot runs).

What it records
  ``requests``: every REST call (method, path, JSON body). ``posts``: every
  message the bot posted, in order, with the users and roles it would ping
  under Discord's allowed-mentions rules (:func:`pinged`); an edit changes its
  Post and keeps the version it replaced in ``Post.edits``
  (:meth:`FakeDiscord.wait_for_edit`). ``messages``: every message in the
  world, as Discord holds it, by ID. ``audit_log``: the bot's kicks, bans and
  member changes with their ``X-Audit-Log-Reason``.
  ``rate_limited``: every 429 served; ``bucket_requests``: every request counted
  against a limited bucket, ``early`` if it came after a 429 and before that
  bucket's reset (its client did not honour ``retry_after``).
  ``gateway_rate_limited``: every RATE_LIMITED event sent (its ``d``).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import re
import time
import urllib.parse
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1420070400000

# Permission bits (https://discord.com/developers/docs/topics/permissions)
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
KICK_MEMBERS = 1 << 1
BAN_MEMBERS = 1 << 2
CHANGE_NICKNAME = 1 << 26
MANAGE_NICKNAMES = 1 << 27
MANAGE_ROLES = 1 << 28
ALL_PERMISSIONS = (1 << 53) - 1
EVERYONE_DEFAULT = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | (1 << 16)  # + read message history
UPLOAD_LIMIT = 10 * 1024 * 1024  # bytes a message's files may hold in a server without boosts

# Gateway intents (https://discord.com/developers/docs/events/gateway#gateway-intents)
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
INTENT_GUILD_PRESENCES = 1 << 8
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_MESSAGE_CONTENT | INTENT_GUILD_PRESENCES

# Gateway opcodes
OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_PRESENCE = 0, 1, 2, 3
OP_RESUME, OP_RECONNECT, OP_REQUEST_MEMBERS, OP_INVALID_SESSION, OP_HELLO, OP_ACK = 6, 7, 8, 9, 10, 11

# Request Guild Members (https://discord.com/developers/docs/events/gateway-events#request-guild-members)
MAX_CHUNK_MEMBERS = 1000  # "up to 1000 members per chunk"
MAX_QUERY_MEMBERS = 100  # a prefix query returns at most 100 members, and so do user_ids
MAX_NONCE_BYTES = 32  # a longer nonce is ignored: the chunks carry none
# The whole member list (query "", limit 0): once per guild per bot every 30 s, else a RATE_LIMITED
# event (https://discord.com/developers/docs/change-log, "Introducing Rate Limit When Requesting All
# Guild Members", August 2025, for every guild from October 1, 2025)
REQUEST_ALL_MEMBERS_EVERY = 30.0

MENTION_RE = re.compile(r"<@!?(\d{15,20})>")
ROLE_MENTION_RE = re.compile(r"<@&(\d{15,20})>")

_counter = itertools.count(1)


def snowflake() -> int:
    """A realistic, unique, increasing snowflake."""
    return ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(_counter) & 0x3FFFFF)


def shard_of(guild_id: int, num_shards: int) -> int:
    """The shard Discord sends a guild's events to (https://discord.com/developers/docs/events/gateway#sharding)."""
    return (guild_id >> 22) % num_shards


def snowflake_on_shard(shard_id: int, num_shards: int) -> int:
    """A unique snowflake that :func:`shard_of` puts on ``shard_id``.

    Only the timestamp (the bits above 22) decides the shard, so it moves up to
    ``num_shards - 1`` ms ahead; the counter bits below keep the ID unique.
    """
    flake = snowflake()
    timestamp = flake >> 22
    return ((timestamp + (shard_id - timestamp) % num_shards) << 22) | (flake & 0x3FFFFF)


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


def json_response(payload: Any, status: int = 200) -> web.Response:
    # Exactly "application/json", as Discord sends it; discord.py compares the header verbatim.
    return web.Response(status=status, body=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})


def error_response(status: int, code: int, message: str) -> web.Response:
    return json_response({"message": message, "code": code}, status)


def missing_permissions() -> web.Response:
    return error_response(403, 50013, "Missing Permissions")


class _Unset:
    """The type of :data:`UNSET`: an argument not given, where None is a value (no nickname)."""


UNSET = _Unset()


@dataclass
class User:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None
    dms_closed: bool = False  # the user does not accept DMs from this server's members

    def payload(self) -> dict[str, Any]:
        data = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "public_flags": 0,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass
class Role:
    id: int
    name: str
    permissions: int = 0
    position: int = 0
    managed: bool = False  # an integration's or a bot's role: nobody can give it or take it away
    tags: dict[str, Any] = field(default_factory=dict)  # {"bot_id": ...} for a bot's own role

    def payload(self) -> dict[str, Any]:
        data = {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }
        if self.tags:  # Discord sends ``tags`` only when the role has some
            data["tags"] = dict(self.tags)
        return data


@dataclass
class Overwrite:
    id: int
    type: int  # 0 role, 1 member
    allow: int = 0
    deny: int = 0

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass
class Channel:
    id: int
    name: str
    guild_id: int | None = None
    overwrites: list[Overwrite] = field(default_factory=list)
    position: int = 0
    recipient: User | None = None  # for DM channels
    parent_id: int | None = None  # for threads: the channel they belong to

    def payload(self) -> dict[str, Any]:
        if self.recipient is not None:
            return {"id": str(self.id), "type": 1, "last_message_id": None, "recipients": [self.recipient.payload()]}
        if self.parent_id is not None:  # a public thread (type 11): its permissions are its parent's
            return {
                "id": str(self.id),
                "type": 11,
                "guild_id": str(self.guild_id),
                "parent_id": str(self.parent_id),
                "owner_id": str(self.parent_id),
                "name": self.name,
                "last_message_id": None,
                "message_count": 0,
                "member_count": 0,
                "rate_limit_per_user": 0,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": iso_now(),
                    "locked": False,
                },
                "flags": 0,
            }
        return {
            "id": str(self.id),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [ow.payload() for ow in self.overwrites],
            "topic": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }


@dataclass
class Member:
    user: User
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)

    def payload(self, with_user: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        return data


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    bans: set[int] = field(default_factory=set)

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]

    def payload(self, members: list[Member] | None = None, large_threshold: int = 50) -> dict[str, Any]:
        """The guild as GUILD_CREATE carries it: with ``members`` (default: every member).

        ``large`` says the guild has more members than ``large_threshold`` (IDENTIFY's).
        """
        members = list(self.members.values()) if members is None else members
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [role.payload() for role in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "safety_alerts_channel_id": None,
            # GUILD_CREATE extras
            "joined_at": iso_now(),
            "large": len(self.members) > large_threshold,
            "unavailable": False,
            "member_count": len(self.members),
            "voice_states": [],
            "members": [member.payload() for member in members],
            "channels": [channel.payload() for channel in self.channels.values() if channel.parent_id is None],
            "threads": [channel.payload() for channel in self.channels.values() if channel.parent_id is not None],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def top_position(self, member: Member) -> int:
        return max((self.roles[r].position for r in member.roles), default=0)

    def base_permissions(self, member: Member) -> int:
        if member.user.id == self.owner_id:
            return ALL_PERMISSIONS
        permissions = self.everyone.permissions
        for role_id in member.roles:
            permissions |= self.roles[role_id].permissions
        return ALL_PERMISSIONS if permissions & ADMINISTRATOR else permissions

    def permissions_in(self, member: Member, channel: Channel) -> int:
        """Discord's documented algorithm: base permissions, then channel overwrites (a thread: its parent's)."""
        if channel.parent_id is not None:
            channel = self.channels[channel.parent_id]
        permissions = self.base_permissions(member)
        if permissions & ADMINISTRATOR or permissions == ALL_PERMISSIONS:
            return ALL_PERMISSIONS
        by_id = {ow.id: ow for ow in channel.overwrites}
        everyone = by_id.get(self.id)
        if everyone:
            permissions = (permissions & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for role_id in member.roles:
            ow = by_id.get(role_id)
            if ow and ow.type == 0:
                allow |= ow.allow
                deny |= ow.deny
        permissions = (permissions & ~deny) | allow
        own = by_id.get(member.user.id)
        if own and own.type == 1:
            permissions = (permissions & ~own.deny) | own.allow
        return permissions


def pinged(content: str, allowed: dict[str, Any] | None, guild: Guild | None) -> dict[str, Any]:
    """Who a message would notify, under Discord's allowed-mentions rules.

    Without ``allowed_mentions`` every mention in the content pings. With it,
    a kind pings only if it is in ``parse`` or listed by ID in ``users``/``roles``.
    """
    parse = {"users", "roles", "everyone"} if allowed is None else set(allowed.get("parse", []))
    listed_users = set() if allowed is None else {int(u) for u in allowed.get("users", [])}
    listed_roles = set() if allowed is None else {int(r) for r in allowed.get("roles", [])}
    users = {int(u) for u in MENTION_RE.findall(content)}
    roles = {int(r) for r in ROLE_MENTION_RE.findall(content)}
    everyone = "@everyone" in content or "@here" in content
    return {
        "users": sorted(u for u in users if "users" in parse or u in listed_users),
        "roles": sorted(r for r in roles if "roles" in parse or r in listed_roles),
        "everyone": everyone and "everyone" in parse,
    }


# Message limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits)
MAX_CONTENT_LENGTH = 2000
MAX_EMBEDS = 10
MAX_FIELDS = 25
MAX_EMBED_TOTAL = 6000  # title, description, field names and values, footer text, author name: all embeds together
EMBED_TEXT_LIMITS = {"title": 256, "description": 4096}
EMBED_PART_LIMITS = {("footer", "text"): 2048, ("author", "name"): 256}
FIELD_LIMITS = {"name": 256, "value": 1024}


MAX_NICK_LENGTH = 32

# What the fake lets an edit change; discord.py sends "tts" with every edit, which Discord ignores there,
# and Message.edit sends "flags" (the message's own, unless asked to suppress embeds).
EDITABLE_MESSAGE_FIELDS = {"content", "embeds", "allowed_mentions", "tts", "flags"}
# The message flags an edit may change (https://discord.com/developers/docs/resources/message#edit-message);
# others are ignored, as Discord ignores them.
SUPPRESS_EMBEDS = 1 << 2
IS_COMPONENTS_V2 = 1 << 15


def _role_list_problems(roles: Any) -> dict[str, Any] | None:
    """Discord's nested ``errors`` for a ``roles`` field that is not a list of snowflakes, or None."""
    if roles is None:
        return None
    if not isinstance(roles, list):
        return {"roles": _errors("LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")}
    bad = {
        str(i): _errors("NUMBER_TYPE_COERCE", f'Value "{r}" is not snowflake.')
        for i, r in enumerate(roles)
        if isinstance(r, bool) or not str(r).isdigit()
    }
    return {"roles": bad} if bad else None


def _errors(code: str, message: str) -> dict[str, Any]:
    """One leaf of Discord's nested form errors."""
    return {"_errors": [{"code": code, "message": message}]}


def _too_long(limit: int) -> dict[str, Any]:
    return _errors("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _visible_length(text: Any) -> int:
    """Characters Discord counts: leading and trailing whitespace is trimmed first."""
    return len(str(text or "").strip())


def embed_length(embed: dict[str, Any]) -> int:
    """An embed's share of the 6,000 characters a message's embeds may hold together."""
    parts = [embed.get(key) for key in EMBED_TEXT_LIMITS]
    parts += [(embed.get(part) or {}).get(key) for part, key in EMBED_PART_LIMITS]
    parts += [f.get(key) for f in embed.get("fields") or [] for key in FIELD_LIMITS]
    return sum(_visible_length(text) for text in parts)


def _embed_problems(embed: dict[str, Any]) -> dict[str, Any]:
    problems: dict[str, Any] = {}
    for key, limit in EMBED_TEXT_LIMITS.items():
        if _visible_length(embed.get(key)) > limit:
            problems[key] = _too_long(limit)
    for (part, key), limit in EMBED_PART_LIMITS.items():
        if _visible_length((embed.get(part) or {}).get(key)) > limit:
            problems[part] = {key: _too_long(limit)}
    fields = embed.get("fields") or []
    field_problems: dict[str, Any] = {}
    if len(fields) > MAX_FIELDS:
        field_problems.update(_too_long(MAX_FIELDS))
    for index, f in enumerate(fields):
        this_field: dict[str, Any] = {}
        for key, limit in FIELD_LIMITS.items():
            length = _visible_length(f.get(key))
            if length == 0:  # missing, or empty: see message_problems
                this_field[key] = _errors("BASE_TYPE_REQUIRED", "This field is required")
            elif length > limit:
                this_field[key] = _too_long(limit)
        if this_field:
            field_problems[str(index)] = this_field
    if field_problems:
        problems["fields"] = field_problems
    return problems


def message_problems(content: str, embeds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Discord's nested ``errors`` for a message that breaks its documented limits, or None.

    Each problem sits at the path of what broke it, as Discord reports it:
    ``{"embeds": {"0": {"fields": {"3": {"value": {"_errors": [...]}}}}}}``.
    The 6,000-character total is reported on ``embeds`` itself.

    A field whose name or value is missing is refused by Discord. One that is
    empty (or only whitespace) is refused here too, although Discord has been
    seen to accept empty strings since about 2024 (undocumented either way):
    the fake stays on the strict side, so a post it accepts is one Discord accepts.
    """
    errors: dict[str, Any] = {}
    if len(content) > MAX_CONTENT_LENGTH:
        errors["content"] = _too_long(MAX_CONTENT_LENGTH)
    if len(embeds) > MAX_EMBEDS:
        errors["embeds"] = _too_long(MAX_EMBEDS)
        return errors
    embed_errors: dict[str, Any] = {}
    for index, embed in enumerate(embeds):
        if problems := _embed_problems(embed):
            embed_errors[str(index)] = problems
    if sum(embed_length(embed) for embed in embeds) > MAX_EMBED_TOTAL:
        embed_errors.update(_errors("MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}"))
    if embed_errors:
        errors["embeds"] = embed_errors
    return errors or None


@dataclass
class PostVersion:
    """One version of a post: as first posted, or as an edit left it."""

    content: str
    embeds: list[dict[str, Any]]
    allowed_mentions: dict[str, Any] | None
    pings: dict[str, Any]
    edited_timestamp: str | None  # None: the message as first posted


@dataclass
class Post:
    """A message the bot posted, as it reads now: an edit changes it (see ``edits``)."""

    id: int
    channel_id: int
    content: str
    embeds: list[dict[str, Any]]
    allowed_mentions: dict[str, Any] | None  # of the post, or of the latest edit (None: that request had none)
    pings: dict[str, Any]  # the mentions of the current content under those allowed mentions (see pinged)
    edited_timestamp: str | None = None  # of the latest edit
    edits: list[PostVersion] = field(default_factory=list)  # each version an edit replaced, oldest (as posted) first
    files: dict[str, bytes] = field(default_factory=dict)  # attachments uploaded with it: file name to content

    @property
    def version(self) -> PostVersion:
        """The current version."""
        return PostVersion(self.content, self.embeds, self.allowed_mentions, self.pings, self.edited_timestamp)

    def edited_versions(self) -> list[Post]:
        """The post as each edit left it, oldest first (the last is the post as it reads now)."""
        versions = [*self.edits[1:], self.version]
        return [replace(self, **vars(version)) for version in versions] if self.edits else []

    def edit(self, version: PostVersion) -> None:
        self.edits.append(self.version)
        self.content, self.embeds = version.content, version.embeds
        self.allowed_mentions, self.pings = version.allowed_mentions, version.pings
        self.edited_timestamp = version.edited_timestamp

    @property
    def text(self) -> str:
        """Content and embed text together, for assertions on what a member reads."""
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title", ""), embed.get("description", "")]
            for f in embed.get("fields", []):
                parts += [f["name"], f["value"]]
            parts.append(embed.get("footer", {}).get("text", ""))
        return "\n".join(p for p in parts if p)


# Rate limits (https://discord.com/developers/docs/topics/rate-limits)
# A route bucket, as :meth:`FakeDiscord.limit` names it, and the routes it covers: per route and
# major parameter (the guild), as Discord counts. "global" covers every request and is per bot.
RATE_LIMIT_BUCKETS = {
    "member_roles": "PUT and DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}, "
    "PATCH /guilds/{guild_id}/members/{user_id}",
    "message_edit": "PATCH /channels/{channel_id}/messages/{message_id}",
    "message_post": "POST /channels/{channel_id}/messages",
    "global": "every REST request",
}
# What each bucket counts per (its major parameter): a guild, a channel, or nothing (the whole bot).
BUCKET_MAJOR = {"member_roles": "guild", "message_edit": "channel", "message_post": "channel", "global": None}
RATE_LIMITED_MESSAGE = "You are being rate limited."


def _is_message_path(parts: list[str]) -> bool:
    """Whether a path's parts are /channels/{channel_id}/messages/{message_id}."""
    return (
        len(parts) == 4
        and parts[0] == "channels"
        and parts[2] == "messages"
        and parts[1].isdigit()
        and parts[3].isdigit()
    )


def bucket_hash(bucket: str) -> str:
    """The ``X-RateLimit-Bucket`` of a bucket: an opaque string, the same for every guild."""
    return hashlib.md5(bucket.encode(), usedforsecurity=False).hexdigest()


def _ms_ceil(seconds: float) -> float:
    """Seconds rounded up to Discord's millisecond precision: a client that waits this long is late enough."""
    return math.ceil(seconds * 1000) / 1000


@dataclass
class RateLimitHit:
    """A 429 the fake served."""

    bucket: str  # a key of RATE_LIMIT_BUCKETS
    major: int | None  # the major parameter (a guild or channel ID, see BUCKET_MAJOR); None for the global limit
    method: str
    path: str
    at: float  # FakeDiscord.clock() when it was served
    retry_after: float  # what the body said
    reset_at: float  # FakeDiscord.clock() when the bucket resets

    @property
    def is_global(self) -> bool:
        return self.bucket == "global"

    @property
    def guild_id(self) -> int | None:
        return self.major if BUCKET_MAJOR[self.bucket] == "guild" else None

    @property
    def channel_id(self) -> int | None:
        return self.major if BUCKET_MAJOR[self.bucket] == "channel" else None


@dataclass
class BucketRequest:
    """A request counted against a limited bucket, and whether it honoured an earlier 429."""

    bucket: str
    major: int | None  # as in RateLimitHit
    method: str
    path: str
    at: float  # FakeDiscord.clock() on arrival
    status: int  # what the fake answered (429 when over the limit)
    early: bool  # it came after a 429 of this bucket and before that 429's reset: retry_after was not honoured

    guild_id = RateLimitHit.guild_id
    channel_id = RateLimitHit.channel_id


@dataclass
class _Window:
    """One bucket's current window, for one major parameter."""

    reset_at: float
    remaining: int
    limited_until: float = 0.0  # the reset of this window once a 429 was served in it


class Session:
    """One gateway session: survives a dropped socket so it can be RESUMEd."""

    def __init__(self, intents: int, shard: tuple[int, int] = (0, 1), large_threshold: int = 50) -> None:
        self.id = f"fake{snowflake():x}"
        self.intents = intents
        self.shard = shard  # (shard_id, num_shards) from IDENTIFY; (0, 1) without one
        self.large_threshold = large_threshold  # from IDENTIFY: 50 to 250, 50 without one
        self.seq = 0
        self.sent: list[dict[str, Any]] = []  # dispatches, for replay on RESUME
        self.socket: _Socket | None = None
        self.ready = False  # READY and every GUILD_CREATE sent

    @property
    def live(self) -> bool:
        """READY sent and the socket still up."""
        return self.ready and self.socket is not None and not self.socket.ws.closed

    def receives(self, guild_id: int | None) -> bool:
        """Whether Discord sends this session a guild's events; those without a guild (DMs) go to shard 0."""
        shard_id, num_shards = self.shard
        return shard_id == 0 if guild_id is None else shard_of(guild_id, num_shards) == shard_id


class _Socket:
    """One websocket connection and its transport compression."""

    def __init__(self, ws: web.WebSocketResponse, compression: str | None) -> None:
        self.ws = ws
        self.compression = compression
        if compression == "zlib-stream":
            self._zlib = zlib.compressobj()
        elif compression == "zstd-stream":
            import zstandard

            self._zstd = zstandard.ZstdCompressor().compressobj()

    async def send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        if self.compression == "zlib-stream":
            await self.ws.send_bytes(self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH))
        elif self.compression == "zstd-stream":
            import zstandard

            await self.ws.send_bytes(self._zstd.compress(data) + self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
        else:
            await self.ws.send_str(data.decode())


class FakeDiscord:
    """The fake: build a world (guilds, roles, channels, members), then start it."""

    def __init__(
        self,
        *,
        token: str = "fake.bot.token-for-tests-only-0000000000000000000000",
        enabled_intents: int = INTENT_GUILD_MEMBERS | INTENT_MESSAGE_CONTENT,
        heartbeat_interval_ms: int = 41250,
        shard_count: int = 1,
        guild_create_members: str = "all",
    ) -> None:
        self.token = token
        self.enabled_intents = enabled_intents  # privileged intents switched on in the "portal"
        self.heartbeat_interval_ms = heartbeat_interval_ms
        # What GET /gateway/bot recommends and, as if the bot were in that many thousand guilds,
        # the fewest shards IDENTIFY accepts (Discord's 4011 "Sharding required").
        self.shard_count = shard_count
        # The members GUILD_CREATE carries. "discord": as Discord sends them: without the GUILD_PRESENCES
        # intent only the bot's own member (nobody is in voice here), so a client must chunk the guild for
        # the rest; with it every member up to IDENTIFY's large_threshold, above it only those with a role
        # or a nickname (nobody is online here) and the bot. "all": every member, always (not Discord's).
        if guild_create_members not in ("all", "discord"):
            raise ValueError(f"guild_create_members is 'all' or 'discord', not {guild_create_members!r}")
        self.guild_create_members = guild_create_members
        self.bot_user = User(snowflake(), "Tally", bot=True)
        self.application_id = snowflake()
        self.owner = User(snowflake(), "app-owner")
        self.guilds: dict[int, Guild] = {}
        self.users: dict[int, User] = {self.bot_user.id: self.bot_user}
        self.dm_channels: dict[int, Channel] = {}  # by recipient
        self.requests: list[tuple[str, str, Any]] = []
        self.unknown_routes: list[str] = []
        self.posts: list[Post] = []
        self._posts_by_id: dict[int, Post] = {}
        self.messages: dict[int, dict[str, Any]] = {}  # every message, as Discord holds it now (edits applied)
        # What the bot did, with its X-Audit-Log-Reason: kicks and bans ({"guild_id", "action", "target_id",
        # "reason"}), role changes ("member_role_update", with "added" and "removed" role IDs) and
        # nickname changes ("member_update", with "nick").
        self.audit_log: list[dict[str, Any]] = []
        # Rate limits: see limit(). clock() is the time they are counted in (time.monotonic, the
        # clock asyncio and discord.py wait on); a test may replace it to move time by hand.
        self.clock = time.monotonic
        self.limits: dict[str, tuple[int, float, str]] = {}  # bucket -> (requests, per seconds, scope)
        # [method, path prefix, status (None: no answer), times left]: see fail() and hang()
        self._faults: list[list] = []
        self._stopping = asyncio.Event()  # set by stop(): hung requests end
        self.hung = 0  # requests hang() held without an answer
        self._windows: dict[tuple[str, int | None], _Window] = {}
        # Each guild's roles as the gateway was last told of them (GUILD_CREATE, GUILD_ROLE_*), for update_roles()
        self._roles_told: dict[int, dict[int, dict[str, Any]]] = {}
        self.rate_limited: list[RateLimitHit] = []  # every 429 served, in order
        self.bucket_requests: list[BucketRequest] = []  # every request counted against a limited bucket
        # Requesting a whole guild's member list (query "", limit 0) is allowed once per guild every
        # this many seconds, counted in clock(); None lifts the limit. Over it: RATE_LIMITED.
        self.request_all_members_every: float | None = REQUEST_ALL_MEMBERS_EVERY
        self._all_members_requested: dict[int, float] = {}  # guild -> clock() of the last one answered
        self.gateway_rate_limited: list[dict[str, Any]] = []  # every RATE_LIMITED event's "d", in order
        self.identifies: list[dict[str, Any]] = []
        self.compressions: list[str | None] = []  # per gateway connection, as the client asked
        self.resumes = 0
        self.sessions: dict[str, Session] = {}  # by ID, resumable ones with their socket down included
        self.ready_session: Session | None = None  # the latest to be sent READY, of any shard
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- building the world ------------------------------------------------------

    def add_guild(
        self, name: str = "Test Server", owner: User | None = None, *, shard: tuple[int, int] | None = None
    ) -> Guild:
        """A guild with its owner and the bot; ``shard=(shard_id, num_shards)`` picks an ID on that shard."""
        owner = owner or self.add_user("owner")
        guild = Guild(snowflake_on_shard(*shard) if shard else snowflake(), name, owner.id)
        guild.roles[guild.id] = Role(guild.id, "@everyone", EVERYONE_DEFAULT)
        self.guilds[guild.id] = guild
        guild.members[owner.id] = Member(owner)
        guild.members[self.bot_user.id] = Member(self.bot_user)
        return guild

    def add_user(self, username: str, *, bot: bool = False, global_name: str | None = None) -> User:
        user = User(snowflake(), username, bot=bot, global_name=global_name)
        self.users[user.id] = user
        return user

    def add_role(
        self,
        guild: Guild,
        name: str,
        permissions: int = 0,
        position: int = 1,
        *,
        managed: bool = False,
        bot: User | None = None,
    ) -> Role:
        """A role; ``managed=True`` makes an integration's role, ``bot=user`` that bot's own (managed) role.

        Discord tags a managed role with the ``bot_id`` or ``integration_id`` it belongs to;
        nobody, the owner included, can give a managed role to a member or take it away.
        """
        tags: dict[str, Any] = {}
        if bot is not None:
            tags = {"bot_id": str(bot.id)}
        elif managed:
            tags = {"integration_id": str(snowflake())}
        role = Role(snowflake(), name, permissions, position, managed=managed or bot is not None, tags=tags)
        guild.roles[role.id] = role
        return role

    async def delete_role(self, guild: Guild, role: Role) -> None:
        """Someone deletes ``role`` in Discord: it leaves the guild and every member; GUILD_ROLE_DELETE is dispatched.

        As on Discord, no GUILD_MEMBER_UPDATE follows for the members who had it.
        """
        if role.id == guild.id:
            raise ValueError("the @everyone role cannot be deleted")
        del guild.roles[role.id]
        self._roles_told.get(guild.id, {}).pop(role.id, None)
        for member in guild.members.values():
            if role.id in member.roles:
                member.roles.remove(role.id)
        await self.dispatch("GUILD_ROLE_DELETE", {"guild_id": str(guild.id), "role_id": str(role.id)}, INTENT_GUILDS)

    async def update_roles(self, guild: Guild, *roles: Role) -> list[str]:
        """Someone edited roles in Server Settings: tell the gateway what a test changed directly.

        A test changes a :class:`Role` (``permissions``, ``position``, ...) or adds one with
        :meth:`add_role` while the bot runs, then calls this: each role the gateway was told of in
        another shape gets GUILD_ROLE_UPDATE ``{guild_id, role}``, and each it was never told of
        GUILD_ROLE_CREATE (GUILDS intent), as Discord sends them. With ``roles``, those roles are
        sent even if unchanged. Returns the events sent, in order.
        """
        told = self._roles_told.get(guild.id)
        if told is None:  # no session has been sent the guild yet: its GUILD_CREATE will carry the roles
            return []
        explicit = {role.id for role in roles}
        sent = []
        for role in guild.roles.values():
            payload = role.payload()
            if role.id not in explicit and told.get(role.id) == payload:
                continue
            event = "GUILD_ROLE_UPDATE" if role.id in told else "GUILD_ROLE_CREATE"
            told[role.id] = payload
            await self.dispatch(event, {"guild_id": str(guild.id), "role": payload}, INTENT_GUILDS)
            sent.append(event)
        return sent

    async def update_role_permissions(self, guild: Guild, *roles: Role) -> list[str]:
        """After a test changed roles' permissions directly: the same as :meth:`update_roles`."""
        return await self.update_roles(guild, *roles)

    async def move_role(self, guild: Guild, role: Role, position: int) -> None:
        """Someone drags ``role`` to ``position`` in Server Settings: GUILD_ROLE_UPDATE.

        Only this role moves (Discord would also shift the roles between, and update each).
        """
        role.position = position
        await self.update_roles(guild, role)

    def add_channel(self, guild: Guild, name: str = "general", overwrites: list[Overwrite] | None = None) -> Channel:
        channel = Channel(snowflake(), name, guild.id, overwrites or [], position=len(guild.channels))
        guild.channels[channel.id] = channel
        return channel

    def add_thread(self, guild: Guild, parent: Channel, name: str) -> Channel:
        """An active public thread in ``parent`` (sent in GUILD_CREATE's ``threads``)."""
        thread = Channel(snowflake(), name, guild.id, parent_id=parent.id)
        guild.channels[thread.id] = thread
        return thread

    def add_member(
        self,
        guild: Guild,
        username: str,
        *,
        roles: list[Role] | None = None,
        bot: bool = False,
        nick: str | None = None,
    ) -> User:
        user = self.add_user(username, bot=bot)
        guild.members[user.id] = Member(user, [r.id for r in roles or []], nick)
        return user

    async def member_join(self, guild: Guild, user: User, roles: list[Role] | None = None) -> Member:
        """``user`` joins ``guild`` (with ``roles``, as a role-on-join integration would give): GUILD_MEMBER_ADD."""
        self.users.setdefault(user.id, user)
        member = Member(user, [r.id for r in roles or []])
        guild.members[user.id] = member
        await self.dispatch("GUILD_MEMBER_ADD", member.payload() | {"guild_id": str(guild.id)}, INTENT_GUILD_MEMBERS)
        return member

    async def member_leave(self, guild: Guild, user: User) -> None:
        """The member leaves (or is kicked or banned): GUILD_MEMBER_REMOVE is dispatched."""
        del guild.members[user.id]
        await self.dispatch(
            "GUILD_MEMBER_REMOVE", {"guild_id": str(guild.id), "user": user.payload()}, INTENT_GUILD_MEMBERS
        )

    async def remove_member(self, guild: Guild, user: User) -> None:
        """The member leaves: the same as :meth:`member_leave`."""
        await self.member_leave(guild, user)

    async def update_member(
        self, guild: Guild, user: User, *, roles: list[Role] | None = None, nick: str | None | _Unset = UNSET
    ) -> bool:
        """Someone changes a member in Discord's UI: ``roles`` replaces theirs, ``nick`` (None clears it).

        GUILD_MEMBER_UPDATE is dispatched if anything changed; returns whether it did.
        """
        member = guild.members[user.id]
        return await self._change_member(guild, member, None if roles is None else [r.id for r in roles], nick)

    async def _change_member(
        self, guild: Guild, member: Member, roles: list[int] | None, nick: str | None | _Unset = UNSET
    ) -> bool:
        """Apply a change; GUILD_MEMBER_UPDATE to the guild's shard if anything changed."""
        changed = False
        if roles is not None and set(roles) != set(member.roles):
            member.roles = list(roles)
            changed = True
        if not isinstance(nick, _Unset) and nick != member.nick:
            member.nick = nick
            changed = True
        if changed:
            await self.dispatch(
                "GUILD_MEMBER_UPDATE", member.payload() | {"guild_id": str(guild.id)}, INTENT_GUILD_MEMBERS
            )
        return changed

    # -- rate limits -------------------------------------------------------------------

    def limit(self, bucket: str, count: int | None, per_seconds: float = 1.0, scope: str = "user") -> None:
        """Let ``count`` requests through per ``per_seconds`` in ``bucket`` (None lifts the limit).

        ``bucket`` is a key of :data:`RATE_LIMIT_BUCKETS`: "member_roles" counts per guild and
        "message_edit" per channel, as Discord counts per route and major parameter
        (:data:`BUCKET_MAJOR`); "global" counts every request of the bot.
        A window opens at the first request and lasts ``per_seconds``. Over the limit the fake answers
        429 with Discord's body and headers; under it, a route bucket's answers carry the
        ``X-RateLimit-*`` headers, ``Remaining`` counting down, so a client can wait before it is
        refused. ``scope`` "shared" plays a per-resource limit (a busy channel's): no headers under
        it, so the first the client learns of it is a 429 with ``X-RateLimit-Scope: shared``.
        Every 429 is kept in ``rate_limited`` and every counted request in ``bucket_requests``.
        """
        if bucket not in RATE_LIMIT_BUCKETS:
            raise ValueError(f"unknown bucket {bucket!r}; the fake limits {sorted(RATE_LIMIT_BUCKETS)}")
        for key in [key for key in self._windows if key[0] == bucket]:
            del self._windows[key]
        if count is None:
            self.limits.pop(bucket, None)
        else:
            self.limits[bucket] = (count, per_seconds, scope)

    def fail(self, method: str, path_prefix: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests ``method path...`` with ``status`` (a 500 or 502, as Discord's
        side fails now and then), before any route or limit; Discord's body for such an answer."""
        self._faults.append([method, path_prefix, status, times])

    def hang(self, method: str, path_prefix: str, times: int = 1) -> None:
        """Accept the next ``times`` requests ``method path...`` and never answer them, as a network
        that lets connections in but never carries an answer back (until the fake stops)."""
        self._faults.append([method, path_prefix, None, times])

    async def _fault(self, method: str, path: str) -> web.Response | None:
        """The answer of the first fail() or hang() this request meets, else None (a hang waits for stop())."""
        for fault in self._faults:
            if fault[0] == method and path.startswith(fault[1]) and fault[3] > 0:
                fault[3] -= 1
                status = fault[2]
                if status is None:
                    self.hung += 1
                    await self._notify()
                    await self._stopping.wait()
                    return error_response(503, 0, "503: Service Unavailable")  # no client waits for it any more
                return error_response(status, 0, f"{status}: Internal Server Error")
        return None

    # -- running -------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (``port``: a given one, to come back where a bot looks; 0: any free one)."""
        # a request with files over the upload limit still reaches the route, which answers 413 40005
        app = web.Application(client_max_size=2 * UPLOAD_LIMIT)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._stopping.clear()
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self._stopping.set()
        for session in self.sessions.values():
            if session.socket is not None:
                await session.socket.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition"):
        """Wait until ``predicate()`` returns something truthy; return it."""

        async def waiting():
            async with self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result

        try:
            return await asyncio.wait_for(waiting(), timeout)
        except TimeoutError:
            raise AssertionError(f"fake Discord: timed out after {timeout} s waiting for {what}") from None

    @property
    def gateway_url(self) -> str:
        return f"{self.url.replace('http', 'ws')}/gateway/"

    @property
    def live_sessions(self) -> list[Session]:
        """Every session with READY sent and its socket up (one per shard), by shard."""
        return sorted((s for s in self.sessions.values() if s.live), key=lambda s: s.shard)

    async def wait_until_ready(self, timeout: float = 15.0, *, shard_id: int | None = None) -> Session:
        """Wait until a session (of shard ``shard_id``, if given) has been sent READY and every GUILD_CREATE.

        Without ``shard_id`` this is the next session to be READY after ``ready_session``
        was reset to None; with it, a live session of that shard.
        """
        if shard_id is None:
            return await self.wait_for(lambda: self.ready_session, timeout, "the bot to connect")
        return await self.wait_for(
            lambda: next((s for s in self.live_sessions if s.shard[0] == shard_id), None),
            timeout,
            f"shard {shard_id} to connect",
        )

    async def wait_for_post(self, after: int = 0, timeout: float = 10.0, channel_id: int | None = None) -> Post:
        """The first post with index >= ``after`` (optionally in one channel)."""

        def found():
            for post in self.posts[after:]:
                if channel_id is None or post.channel_id == channel_id:
                    return post
            return None

        return await self.wait_for(found, timeout, f"a post after #{after}")

    async def wait_for_edit(
        self, message_id: int, predicate: Callable[[Post], Any] | None = None, timeout: float = 10.0
    ) -> Post:
        """The bot's post ``message_id`` once it has been edited (and an edit made ``predicate(post)`` true).

        ``predicate`` is asked of the post as each edit left it (see :meth:`Post.edited_versions`), so an
        edit that a later one replaced still counts, and one made before this call counts too.
        Returns the post as it reads now.
        """

        def found():
            post = self._posts_by_id.get(message_id)
            if post is None:
                return None
            if any(predicate is None or predicate(version) for version in post.edited_versions()):
                return post
            return None

        return await self.wait_for(found, timeout, f"an edit of message {message_id}")

    async def wait_for_request(
        self, method: str, path: str, *, after: int | None = None, timeout: float = 10.0
    ) -> tuple[str, str, Any]:
        """The first REST request ``method path`` (as kept in ``requests``) with index >= ``after``.

        Without ``after``, the first one made from this call on: the request the bot makes in
        answer to what the test just did (a gateway event reaches the bot only after the fake's
        ``await`` that sent it returned, so its answer cannot come before this call). An earlier
        identical request does not count; pass ``after=0`` to count every request.
        """
        start = len(self.requests) if after is None else after

        def found():
            return next((r for r in self.requests[start:] if r[0] == method and r[1] == path), None)

        return await self.wait_for(found, timeout, f"{method} {path} (request #{start} on)")

    # -- gateway -------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any], intent: int = 0, view=None) -> None:
        """Send an event to every session whose intents include ``intent`` and whose shard has its guild.

        The guild is ``data["guild_id"]``; an event without one (a DM) goes to shard 0, as on Discord.
        ``view(session, data)`` may tailor the payload per session (intents).
        A session whose socket is down keeps the event for its RESUME.
        """
        guild_id = int(data["guild_id"]) if data.get("guild_id") else None
        for session in self.sessions.values():
            if (intent and not session.intents & intent) or not session.receives(guild_id):
                continue
            await self._send_dispatch(session, event, view(session, data) if view else data)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        assert request.query.get("v") == "10" and request.query.get("encoding") == "json", request.query
        socket = _Socket(ws, request.query.get("compress"))
        self.compressions.append(socket.compression)
        await socket.send(
            {"op": OP_HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}, "s": None, "t": None}
        )
        session: Session | None = None
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            payload = json.loads(msg.data)
            op, data = payload.get("op"), payload.get("d")
            if op == OP_HEARTBEAT:
                await socket.send({"op": OP_ACK, "d": None, "s": None, "t": None})
            elif op == OP_IDENTIFY:
                session = await self._identify(socket, data)
            elif op == OP_RESUME:
                session = await self._resume(socket, data)
            elif op == OP_REQUEST_MEMBERS:
                await self._members_chunk(socket, session, data)
        if session is not None and session.socket is socket:
            session.socket = None
        return ws

    async def _identify(self, socket: _Socket, data: dict[str, Any]) -> Session | None:
        self.identifies.append({k: v for k, v in data.items() if k != "token"})
        if data.get("token") != self.token:
            await socket.ws.close(code=4004, message=b"Authentication failed.")
            return None
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self.enabled_intents:
            await socket.ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        shard = data.get("shard") or [0, 1]  # without one, a session has every guild: shard 0 of 1
        if not (isinstance(shard, list) and len(shard) == 2 and 0 <= shard[0] < shard[1]):
            await socket.ws.close(code=4010, message=b"Invalid shard.")
            return None
        if shard[1] < self.shard_count:  # each session would hold too many guilds
            await socket.ws.close(code=4011, message=b"Sharding required.")
            return None
        large_threshold = min(max(int(data.get("large_threshold") or 50), 50), 250)
        session = Session(intents, (shard[0], shard[1]), large_threshold)
        session.socket = socket
        self.sessions[session.id] = session
        ready = {
            "v": 10,
            "user": self.bot_user.payload() | {"verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds if session.receives(g)],
            "session_id": session.id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
        }
        if data.get("shard"):
            ready["shard"] = list(session.shard)
        await self._send_dispatch(session, "READY", ready)
        if intents & INTENT_GUILDS:
            for guild in self.guilds.values():
                if session.receives(guild.id):
                    await self._send_dispatch(session, "GUILD_CREATE", self._guild_create(session, guild))
                    self._roles_told[guild.id] = {role.id: role.payload() for role in guild.roles.values()}
        session.ready = True
        self.ready_session = session
        await self._notify()
        return session

    def _guild_create(self, session: Session, guild: Guild) -> dict[str, Any]:
        """GUILD_CREATE for ``session``: its member list as ``guild_create_members`` says."""
        members = list(guild.members.values())
        if self.guild_create_members == "discord":
            if not session.intents & INTENT_GUILD_PRESENCES:
                members = [m for m in members if m.user.id == self.bot_user.id]
            elif len(members) > session.large_threshold:
                members = [m for m in members if m.roles or m.nick or m.user.id == self.bot_user.id]
        return guild.payload(members, session.large_threshold)

    async def _send_dispatch(self, session: Session, event: str, data: dict[str, Any]) -> None:
        """Number the event, keep it for a RESUME, and send it if the socket is up."""
        session.seq += 1
        payload = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.sent.append(payload)
        if session.socket is not None and not session.socket.ws.closed:
            await session.socket.send(payload)

    async def _resume(self, socket: _Socket, data: dict[str, Any]) -> Session | None:
        session = self.sessions.get(data.get("session_id"))
        # Discord answers a RESUME it cannot honour, an unknown session or a wrong token alike,
        # with INVALID_SESSION (d: false); the client then IDENTIFYs, and a wrong token gets 4004 there.
        if session is None or data.get("token") != self.token:
            await socket.send({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return None
        session.socket = socket
        for payload in session.sent:
            if payload["s"] > (data.get("seq") or 0):
                await socket.send(payload)
        self.resumes += 1
        await self._send_dispatch(session, "RESUMED", {})
        await self._notify()
        return session

    async def _members_chunk(self, socket: _Socket, session: Session | None, data: dict[str, Any]) -> None:
        """Request Guild Members: GUILD_MEMBERS_CHUNK events of up to 1,000 members, as Discord answers.

        ``user_ids`` (one snowflake or a list) or a prefix ``query`` (username or nickname) find at most
        100 members, and at most ``limit``; ``query`` "" asks for the whole member list (``limit`` 0:
        all of it), which needs the GUILD_MEMBERS intent (without it Discord does not answer) and,
        with ``limit`` 0, is answered once per guild every :data:`REQUEST_ALL_MEMBERS_EVERY` seconds
        (then RATE_LIMITED). An empty answer is one chunk with no members.
        """
        guild = self.guilds.get(int(data["guild_id"]))
        if session is None or guild is None or not session.receives(guild.id):  # another shard's guild: no answer
            return
        nonce = data.get("nonce")
        if not (isinstance(nonce, str) and len(nonce.encode()) <= MAX_NONCE_BYTES):
            nonce = None  # Discord ignores an invalid nonce: the chunks carry none
        user_ids = data.get("user_ids")
        wanted = [int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids] if user_ids else [])]
        query = (data.get("query") or "").lower()
        limit = data.get("limit") or 0
        if wanted:
            found = [guild.members[u] for u in dict.fromkeys(wanted) if u in guild.members]
            cap = MAX_QUERY_MEMBERS
        elif query:
            found = [
                m
                for m in guild.members.values()
                if m.user.username.lower().startswith(query) or (m.nick or "").lower().startswith(query)
            ]
            cap = MAX_QUERY_MEMBERS
        else:  # the whole member list
            if not session.intents & INTENT_GUILD_MEMBERS:
                return
            if not limit and (refused := self._all_members_refused(guild, nonce)) is not None:
                await self._send_dispatch(session, "RATE_LIMITED", refused)
                return
            found = list(guild.members.values())
            cap = len(found)
        found = found[: min(limit, cap) if limit else cap]
        pages = [found[i : i + MAX_CHUNK_MEMBERS] for i in range(0, len(found), MAX_CHUNK_MEMBERS)] or [[]]
        for index, page in enumerate(pages):
            chunk: dict[str, Any] = {
                "guild_id": str(guild.id),
                "members": [m.payload() for m in page],
                "chunk_index": index,
                "chunk_count": len(pages),
            }
            if wanted:
                chunk["not_found"] = [str(u) for u in dict.fromkeys(wanted) if u not in guild.members]
            if nonce is not None:
                chunk["nonce"] = nonce
            await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    def _all_members_refused(self, guild: Guild, nonce: str | None) -> dict[str, Any] | None:
        """A RATE_LIMITED event's ``d`` if the whole member list of ``guild`` was asked for too recently, or None."""
        if self.request_all_members_every is None:
            return None
        now = self.clock()
        last = self._all_members_requested.get(guild.id)
        if last is None or now >= last + self.request_all_members_every:
            self._all_members_requested[guild.id] = now
            return None
        meta: dict[str, Any] = {"guild_id": str(guild.id)}
        if nonce is not None:
            meta["nonce"] = nonce
        refused = {
            "opcode": OP_REQUEST_MEMBERS,
            "retry_after": _ms_ceil(last + self.request_all_members_every - now),
            "meta": meta,
        }
        self.gateway_rate_limited.append(refused)
        return refused

    async def revoke_token(self) -> None:
        """The owner resets the token in the Developer Portal while the bot runs.

        The old token stops working: REST answers 401 and IDENTIFY is closed with
        4004. Every session ends (none can be RESUMEd) and each live socket is
        closed with 4004, "Authentication failed.", as Discord does.
        """
        self.token = f"fake.bot.token-reset-in-the-portal-{snowflake():x}"
        sessions, self.sessions = self.sessions, {}
        for session in sessions.values():
            if session.socket is not None:
                socket, session.socket = session.socket, None
                await socket.ws.close(code=4004, message=b"Authentication failed.")
        await self._notify()

    async def invalidate_sessions(self, resumable: bool = False) -> None:
        """Send INVALID_SESSION on every live socket, as Discord does when it ends a session.

        With ``resumable`` False the session is forgotten: a RESUME is refused
        and the client must IDENTIFY again, getting READY and GUILD_CREATE anew.
        Discord leaves it to the client to close the socket.
        """
        for session_id, session in list(self.sessions.items()):
            if session.socket is None or session.socket.ws.closed:
                continue
            if not resumable:
                del self.sessions[session_id]
            await session.socket.send({"op": OP_INVALID_SESSION, "d": resumable, "s": None, "t": None})
            session.socket = None  # nothing more is sent on it
        await self._notify()

    async def drop_connection(self, code: int = 4000) -> None:
        """Close every live socket (each shard's) as a network blip would; the bot should RESUME."""
        for session in self.sessions.values():
            if session.socket is not None:
                socket, session.socket = session.socket, None
                await socket.ws.close(code=code, message=b"fake blip")

    # -- members speaking -------------------------------------------------------------

    def _message_payload(
        self,
        channel: Channel,
        author: User,
        content: str,
        *,
        webhook_id: int | None = None,
        type_: int = 0,
        allowed: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A message object; ``mentions`` and ``mention_roles`` are those ``allowed`` (allowed mentions) lets count."""
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        pings = pinged(content, allowed, guild)
        mentions = []
        for user_id in pings["users"]:
            user = self.users.get(user_id)
            if user is None:
                continue
            mention = user.payload()
            if guild and user_id in guild.members:
                mention["member"] = guild.members[user_id].payload(with_user=False)
            mentions.append(mention)
        data: dict[str, Any] = {
            "id": str(snowflake()),
            "channel_id": str(channel.id),
            "author": author.payload(),
            "content": content,
            "timestamp": iso_now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions,
            "mention_roles": [str(r) for r in pings["roles"]],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": type_,
            "flags": 0,
            "components": [],
        }
        if guild is not None:
            data["guild_id"] = str(guild.id)
            if webhook_id is None and author.id in guild.members:
                data["member"] = guild.members[author.id].payload(with_user=False)
        if webhook_id is not None:
            data["webhook_id"] = str(webhook_id)
        return data

    async def say(
        self, channel: Channel, author: User, content: str, *, webhook_id: int | None = None, type_: int = 0
    ) -> dict[str, Any]:
        """A member (or webhook) posts ``content`` in a guild channel."""
        data = self._message_payload(channel, author, content, webhook_id=webhook_id, type_=type_)
        self.messages[int(data["id"])] = data
        await self.dispatch("MESSAGE_CREATE", data, INTENT_GUILD_MESSAGES, self._content_view)
        return data

    def _content_view(self, session: Session, data: dict[str, Any]) -> dict[str, Any]:
        """Without the Message Content intent, a bot sees no text unless it is mentioned."""
        if session.intents & INTENT_MESSAGE_CONTENT or data["author"]["id"] == str(self.bot_user.id):
            return data
        if any(m["id"] == str(self.bot_user.id) for m in data["mentions"]):
            return data
        return data | {"content": "", "embeds": [], "attachments": [], "components": []}

    async def say_in_dm(self, author: User, content: str) -> dict[str, Any]:
        """A user sends the bot a direct message."""
        channel = self._dm_channel(author)
        data = self._message_payload(channel, author, content)
        self.messages[int(data["id"])] = data
        await self.dispatch("MESSAGE_CREATE", data, INTENT_DIRECT_MESSAGES)
        return data

    def _dm_channel(self, user: User) -> Channel:
        if user.id not in self.dm_channels:
            self.dm_channels[user.id] = Channel(snowflake(), "", None, recipient=user)
        return self.dm_channels[user.id]

    # -- REST ------------------------------------------------------------------------

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown_routes.append(f"{request.method} {request.path}")
        return error_response(404, 0, "404: Not Found")

    async def _rest(self, request: web.Request) -> web.Response:
        body = None
        files: dict[str, bytes] = {}
        if request.can_read_body and request.content_type == "application/json":
            body = await request.json()
        elif request.can_read_body and request.content_type == "multipart/form-data":
            body, files = await _multipart(request)
        path = "/" + request.match_info["tail"]
        self.requests.append((request.method, path, body))
        response = await self._answer(request, path, body, files)
        # Discord's API answers through Google's load balancer; discord.py takes a 429 without
        # this header for a Cloudflare ban and gives up instead of waiting.
        response.headers["Via"] = "1.1 google"
        await self._notify()
        return response

    async def _answer(self, request: web.Request, path: str, body: Any, files: dict[str, bytes]) -> web.Response:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            return error_response(401, 0, "401: Unauthorized")
        if (failed := await self._fault(request.method, path)) is not None:
            return failed
        refused, headers, counted = self._take_rate_limits(request.method, path)
        if refused is not None:
            return refused
        reason = request.headers.get("X-Audit-Log-Reason")
        response = await self._route(
            request.method, path, body, urllib.parse.unquote(reason) if reason else None, files
        )
        if response is None:
            self.unknown_routes.append(f"{request.method} {path}")
            response = error_response(404, 0, "404: Not Found")
        response.headers.update(headers)
        for record in counted:
            record.status = response.status
        return response

    def _bucket_of(self, method: str, path: str) -> tuple[str, int] | None:
        """The route bucket a request counts against, with its major parameter (guild or channel), if any."""
        parts = path.strip("/").split("/")
        if method == "PATCH" and _is_message_path(parts):
            return "message_edit", int(parts[1])
        if method == "POST" and len(parts) == 3 and parts[0] == "channels" and parts[2] == "messages":
            return "message_post", int(parts[1])
        if len(parts) < 4 or parts[0] != "guilds" or parts[2] != "members" or not parts[1].isdigit():
            return None
        if not parts[3].isdigit():  # /members/@me and the like: other routes
            return None
        if method in ("PUT", "DELETE") and len(parts) == 6 and parts[4] == "roles":
            return "member_roles", int(parts[1])
        if method == "PATCH" and len(parts) == 4:
            return "member_roles", int(parts[1])
        return None

    def _take_rate_limits(
        self, method: str, path: str
    ) -> tuple[web.Response | None, dict[str, str], list[BucketRequest]]:
        """Count a request against the global limit and its route bucket, if limited.

        Returns a 429 to answer instead of the route (or None), the ``X-RateLimit-*`` headers
        for the route's answer, and what was recorded in ``bucket_requests``.
        """
        counted: list[BucketRequest] = []
        if "global" in self.limits:
            refused, _ = self._take("global", None, method, path, counted)
            if refused is not None:
                return refused, {}, counted
        bucket = self._bucket_of(method, path)
        if bucket is None or bucket[0] not in self.limits:
            return None, {}, counted
        refused, headers = self._take(*bucket, method, path, counted)
        return refused, headers, counted

    def _take(
        self, bucket: str, major: int | None, method: str, path: str, counted: list[BucketRequest]
    ) -> tuple[web.Response | None, dict[str, str]]:
        count, per_seconds, scope = self.limits[bucket]
        now = self.clock()
        window = self._windows.get((bucket, major))
        if window is None or now >= window.reset_at:
            window = self._windows[(bucket, major)] = _Window(now + per_seconds, count)
        record = BucketRequest(bucket, major, method, path, now, 429, early=now < window.limited_until)
        self.bucket_requests.append(record)
        counted.append(record)
        reset_after = _ms_ceil(window.reset_at - now)
        if window.remaining > 0:
            window.remaining -= 1
            if bucket == "global" or scope == "shared":  # Discord shows these limits only on their 429s
                return None, {}
            return None, self._rate_limit_headers(bucket, count, window.remaining, reset_after)
        window.limited_until = window.reset_at
        self.rate_limited.append(RateLimitHit(bucket, major, method, path, now, reset_after, window.reset_at))
        body = {"message": RATE_LIMITED_MESSAGE, "retry_after": reset_after, "global": bucket == "global"}
        response = json_response(body, 429)
        response.headers["Retry-After"] = str(math.ceil(reset_after))
        if bucket == "global":
            response.headers.update({"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"})
        else:
            response.headers.update(self._rate_limit_headers(bucket, count, 0, reset_after))
            response.headers["X-RateLimit-Scope"] = scope
        return response, {}

    def _rate_limit_headers(self, bucket: str, count: int, remaining: int, reset_after: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(count),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{_ms_ceil(time.time() + reset_after):.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket_hash(bucket),
        }

    async def _route(
        self, method: str, path: str, body: Any, audit_reason: str | None = None, files: dict[str, bytes] | None = None
    ) -> web.Response | None:
        parts = path.strip("/").split("/")
        if method == "GET" and path == "/gateway/bot":
            limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
            return json_response({"url": self.gateway_url, "shards": self.shard_count, "session_start_limit": limit})
        if method == "GET" and path == "/users/@me":
            return json_response(self.bot_user.payload() | {"verified": True, "mfa_enabled": False, "flags": 0})
        if method == "GET" and path == "/oauth2/applications/@me":
            return json_response(self._application())
        if method == "POST" and path == "/users/@me/channels":
            user = self.users.get(int(body["recipient_id"]))
            if user is None:
                return error_response(400, 50033, "Invalid Recipient(s)")
            return json_response(self._dm_channel(user).payload())
        if method == "POST" and len(parts) == 3 and parts[0] == "channels" and parts[2] == "messages":
            return await self._post_message(int(parts[1]), body or {}, files)
        if method == "PATCH" and _is_message_path(parts):
            return await self._edit_message(int(parts[1]), int(parts[3]), body)
        if method == "GET" and len(parts) == 2 and parts[0] == "users" and parts[1].isdigit():
            user = self.users.get(int(parts[1]))
            return json_response(user.payload()) if user else error_response(404, 10013, "Unknown User")
        if len(parts) == 4 and parts[0] == "guilds" and (method, parts[2]) in (("DELETE", "members"), ("PUT", "bans")):
            # kick, ban (PUT on members is Add Guild Member, an OAuth2 route; DELETE on bans is an unban)
            action = "kick" if parts[2] == "members" else "ban"
            return await self._remove(action, int(parts[1]), int(parts[3]), audit_reason)
        ids = [int(p) if p.isdigit() else None for p in parts]
        member_path = len(parts) >= 4 and parts[0] == "guilds" and parts[2] == "members" and None not in ids[1::2]
        if member_path and method in ("PUT", "DELETE") and len(parts) == 6 and parts[4] == "roles":
            return await self._member_role(method, ids[1], ids[3], ids[5], audit_reason)
        if member_path and method == "PATCH" and len(parts) == 4:
            return await self._modify_member(ids[1], ids[3], body, audit_reason)
        if method == "GET" and len(parts) == 4 and parts[0] == "guilds" and parts[2] == "members":
            guild = self.guilds.get(int(parts[1]))
            member = guild.members.get(int(parts[3])) if guild else None
            if member is None:
                return error_response(404, 10007, "Unknown Member")
            return json_response(member.payload())
        return None

    async def _remove(self, action: str, guild_id: int, user_id: int, reason: str | None) -> web.Response:
        """Kick or ban, with Discord's checks: the permission, and a bot role above the target's."""
        guild = self.guilds.get(guild_id)
        if guild is None:
            return error_response(404, 10004, "Unknown Guild")
        member = guild.members.get(user_id)
        if member is None and action == "kick":
            return error_response(404, 10007, "Unknown Member")
        me = guild.members[self.bot_user.id]
        needed = KICK_MEMBERS if action == "kick" else BAN_MEMBERS
        if not guild.base_permissions(me) & needed:
            return error_response(403, 50013, "Missing Permissions")
        if member is not None and (user_id == guild.owner_id or guild.top_position(member) >= guild.top_position(me)):
            return error_response(403, 50013, "Missing Permissions")
        self.audit_log.append({"guild_id": guild_id, "action": action, "target_id": user_id, "reason": reason})
        if action == "ban":
            guild.bans.add(user_id)
        if member is not None:
            await self.remove_member(guild, member.user)
        return web.Response(status=204)

    def _role_change_refused(self, guild: Guild, roles: list[Role]) -> web.Response | None:
        """Discord's checks on giving or taking away ``roles``: 403/50013, or None if allowed.

        The bot needs Manage Roles (Administrator includes it) and may only give or take roles
        below its own highest role (Administrator does not lift that; owning the guild does).
        Nobody may give or take a managed role (an integration's or a bot's) or @everyone.
        """
        me = guild.members[self.bot_user.id]
        if not guild.base_permissions(me) & MANAGE_ROLES:
            return missing_permissions()
        for role in roles:
            if role.id == guild.id or role.managed:
                return missing_permissions()
            if me.user.id != guild.owner_id and role.position >= guild.top_position(me):
                return missing_permissions()
        return None

    def _guild_member(self, guild_id: int, user_id: int) -> tuple[Guild | None, Member | None, web.Response | None]:
        """The guild and member a member route names, or Discord's 404 for the first one unknown."""
        guild = self.guilds.get(guild_id)
        if guild is None:
            return None, None, error_response(404, 10004, "Unknown Guild")
        member = guild.members.get(user_id)
        if member is None:
            return guild, None, error_response(404, 10007, "Unknown Member")
        return guild, member, None

    async def _member_role(
        self, method: str, guild_id: int, user_id: int, role_id: int, reason: str | None
    ) -> web.Response:
        """Add Guild Member Role (PUT) and Remove Guild Member Role (DELETE): 204, even when nothing changes."""
        guild, member, unknown = self._guild_member(guild_id, user_id)
        if unknown is not None:
            return unknown
        role = guild.roles.get(role_id)
        if role is None:
            return error_response(404, 10011, "Unknown Role")
        if refused := self._role_change_refused(guild, [role]):
            return refused
        if method == "PUT":
            roles = member.roles if role_id in member.roles else [*member.roles, role_id]
        else:
            roles = [r for r in member.roles if r != role_id]
        await self._change_member_by_bot(guild, member, roles, UNSET, reason)
        return web.Response(status=204)

    async def _modify_member(self, guild_id: int, user_id: int, body: Any, reason: str | None) -> web.Response:
        """Modify Guild Member: ``roles`` (replaces the member's) and ``nick``; 200 with the member."""
        guild, member, unknown = self._guild_member(guild_id, user_id)
        if unknown is not None:
            return unknown
        body = body if isinstance(body, dict) else {}
        if unsupported := sorted(set(body) - {"roles", "nick"}):
            # mute, deaf, channel_id, communication_disabled_until, flags: not modelled here
            self.unknown_routes.append(f"PATCH /guilds/{guild_id}/members/{user_id} with {', '.join(unsupported)}")
            return error_response(404, 0, "404: Not Found")
        roles: list[int] | None = None
        if "roles" in body:
            if (problems := _role_list_problems(body["roles"])) is not None:
                return json_response({"code": 50035, "message": "Invalid Form Body", "errors": problems}, 400)
            roles = list(dict.fromkeys(int(r) for r in body["roles"] or []))  # null: no roles
            if any(r not in guild.roles for r in roles):
                return error_response(404, 10011, "Unknown Role")
        nick: str | None | _Unset = UNSET
        if "nick" in body:
            nick = body["nick"] or None  # "" or null clears the nickname
            problem = None
            if nick is not None and not isinstance(nick, str):
                problem = _errors("BASE_TYPE_STRING", "Must be a string.")
            elif nick is not None and len(nick) > MAX_NICK_LENGTH:
                problem = _too_long(MAX_NICK_LENGTH)
            if problem is not None:
                return json_response({"code": 50035, "message": "Invalid Form Body", "errors": {"nick": problem}}, 400)
        if roles is not None:
            changed = set(roles) ^ set(member.roles)  # added or taken away: each is checked
            if refused := self._role_change_refused(guild, [guild.roles[r] for r in sorted(changed)]):
                return refused
        if not isinstance(nick, _Unset) and (refused := self._nick_change_refused(guild, member)):
            return refused
        await self._change_member_by_bot(guild, member, roles, nick, reason)
        return json_response(member.payload())

    def _nick_change_refused(self, guild: Guild, member: Member) -> web.Response | None:
        """Manage Nicknames, on a member whose highest role is below the bot's (never the owner);
        the bot's own nickname needs Change Nickname (or Manage Nicknames)."""
        me = guild.members[self.bot_user.id]
        permissions = guild.base_permissions(me)
        if member is me:
            return None if permissions & (CHANGE_NICKNAME | MANAGE_NICKNAMES) else missing_permissions()
        if not permissions & MANAGE_NICKNAMES or member.user.id == guild.owner_id:
            return missing_permissions()
        if me.user.id != guild.owner_id and guild.top_position(member) >= guild.top_position(me):
            return missing_permissions()
        return None

    async def _change_member_by_bot(
        self, guild: Guild, member: Member, roles: list[int] | None, nick: str | None | _Unset, reason: str | None
    ) -> None:
        """A change the bot made through REST: into the audit log (with its reason), then onto the gateway."""
        target = {"guild_id": guild.id, "target_id": member.user.id, "reason": reason}
        if roles is not None:
            added = [r for r in roles if r not in member.roles]
            removed = [r for r in member.roles if r not in roles]
            if added or removed:
                self.audit_log.append({**target, "action": "member_role_update", "added": added, "removed": removed})
        if not isinstance(nick, _Unset) and nick != member.nick:
            self.audit_log.append({**target, "action": "member_update", "nick": nick})
        await self._change_member(guild, member, roles, nick)

    def _application(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": "Tally",
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.owner.payload(),
            "team": None,
            "flags": 0,
            "bot": self.bot_user.payload(),
            "approximate_guild_count": len(self.guilds),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "tags": [],
        }

    def _find_channel(self, channel_id: int) -> tuple[Guild | None, Channel | None]:
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild, guild.channels[channel_id]
        for channel in self.dm_channels.values():
            if channel.id == channel_id:
                return None, channel
        return None, None

    async def _post_message(
        self, channel_id: int, body: dict[str, Any], files: dict[str, bytes] | None = None
    ) -> web.Response:
        """Create Message, with files as Discord takes them (multipart: ``payload_json`` and ``files[n]``).

        Files need Attach Files (50013) and may hold at most UPLOAD_LIMIT bytes together (413, 40005).
        """
        files = files or {}
        guild, channel = self._find_channel(channel_id)
        if channel is None:
            return error_response(404, 10003, "Unknown Channel")
        if guild is not None:
            permissions = guild.permissions_in(guild.members[self.bot_user.id], channel)
            if not permissions & VIEW_CHANNEL:
                return error_response(403, 50001, "Missing Access")
            if not permissions & SEND_MESSAGES or (files and not permissions & ATTACH_FILES):
                return error_response(403, 50013, "Missing Permissions")
            if body.get("embeds") and not permissions & EMBED_LINKS:  # as Discord answers a bot's embed
                return error_response(403, 50013, "Missing Permissions")
        elif channel.recipient is not None and channel.recipient.dms_closed:
            return error_response(403, 50007, "Cannot send messages to this user")
        if sum(len(data) for data in files.values()) > UPLOAD_LIMIT:
            return error_response(413, 40005, "Request entity too large")
        content = body.get("content") or ""
        embeds = body.get("embeds") or []
        if not content and not embeds and not files:
            return error_response(400, 50006, "Cannot send an empty message")
        if problems := message_problems(content, embeds):
            return json_response({"code": 50035, "message": "Invalid Form Body", "errors": problems}, 400)
        allowed = body.get("allowed_mentions")
        data = self._message_payload(channel, self.bot_user, content, allowed=allowed)
        data["embeds"] = embeds
        data["attachments"] = [
            {
                "id": (attachment_id := str(snowflake())),
                "filename": name,
                "size": len(content_bytes),
                "url": f"{self.url}/attachments/{channel_id}/{attachment_id}/{name}",
                "proxy_url": f"{self.url}/media/attachments/{channel_id}/{attachment_id}/{name}",
            }
            for name, content_bytes in files.items()
        ]
        post = Post(int(data["id"]), channel_id, content, embeds, allowed, pinged(content, allowed, guild), files=files)
        self.posts.append(post)
        self._posts_by_id[post.id] = post
        self.messages[post.id] = data
        if guild is not None:  # Discord echoes the bot's own message back on the gateway
            await self.dispatch("MESSAGE_CREATE", data, INTENT_GUILD_MESSAGES)
        return json_response(data)

    async def _edit_message(self, channel_id: int, message_id: int, body: Any) -> web.Response:
        """Edit Message: the bot's own message's ``content`` and ``embeds``, with ``allowed_mentions``.

        As Discord: only the author may edit them (50005 for another's message); Send Messages is not
        needed, seeing the channel is (50001). A field given replaces the message's (null clears it),
        one left out stays; the result is held to the limits of posting (50035) and may not be empty
        (50006). ``mentions`` are made anew from the new content, and the pings under the edit's own
        ``allowed_mentions`` (none given: every mention counts, whatever the post had). 200 with the
        message, ``edited_timestamp`` set; MESSAGE_UPDATE to the guild's shard. A body changing neither
        field changes nothing and answers the message as it is.
        """
        guild, channel = self._find_channel(channel_id)
        if channel is None:
            return error_response(404, 10003, "Unknown Channel")
        if guild is not None and not guild.permissions_in(guild.members[self.bot_user.id], channel) & VIEW_CHANNEL:
            return error_response(403, 50001, "Missing Access")
        message = self.messages.get(message_id)
        if message is None or message["channel_id"] != str(channel_id):
            return error_response(404, 10008, "Unknown Message")
        if message["author"]["id"] != str(self.bot_user.id):
            return error_response(403, 50005, "Cannot edit a message authored by another user")
        body = body if isinstance(body, dict) else {}
        unsupported = set(body) - EDITABLE_MESSAGE_FIELDS
        if (body.get("flags") or 0) & (SUPPRESS_EMBEDS | IS_COMPONENTS_V2) != message["flags"] & SUPPRESS_EMBEDS:
            unsupported.add("flags")  # suppressing embeds or components v2: not modelled here
        if unsupported := sorted(unsupported):
            # components, attachments and files: not modelled here
            self.unknown_routes.append(
                f"PATCH /channels/{channel_id}/messages/{message_id} with {', '.join(unsupported)}"
            )
            return error_response(404, 0, "404: Not Found")
        if "content" not in body and "embeds" not in body:
            return json_response(message)
        content = (body["content"] or "") if "content" in body else message["content"]
        embeds = (body["embeds"] or []) if "embeds" in body else message["embeds"]
        if not content and not embeds:
            return error_response(400, 50006, "Cannot send an empty message")
        if problems := message_problems(content, embeds):
            return json_response({"code": 50035, "message": "Invalid Form Body", "errors": problems}, 400)
        allowed = body.get("allowed_mentions")
        data = self._message_payload(channel, self.bot_user, content, type_=message["type"], allowed=allowed)
        data.update(id=message["id"], timestamp=message["timestamp"], edited_timestamp=iso_now(), embeds=embeds)
        self.messages[message_id] = data  # a new dict: what was dispatched before stays as it was sent
        post = self._posts_by_id.get(message_id)
        if post is not None:
            post.edit(PostVersion(content, embeds, allowed, pinged(content, allowed, guild), data["edited_timestamp"]))
        if guild is not None:  # as for MESSAGE_CREATE: the whole message, with guild_id and member
            await self.dispatch("MESSAGE_UPDATE", data, INTENT_GUILD_MESSAGES)
        return json_response(data)


async def _multipart(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A multipart body as Discord reads it: ``payload_json`` (the JSON fields) and ``files[n]`` (the files)."""
    body: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    reader = await request.multipart()
    async for part in reader:
        if part.name == "payload_json":
            body = json.loads(await part.text())
        elif part.name and part.name.startswith("files["):
            files[part.filename or part.name] = bytes(await part.read())
    return body, files
