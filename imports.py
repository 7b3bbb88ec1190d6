"""``python bot.py import FILE --guild ID``: a server's levels from another bot's data, or from Tally's own export.

The format is found from the content, never from the file name, and named:
Tally's JSON export; MEE6's leaderboard as its public API returns it (one
page, pages saved one after another in one file, a list of pages, or a
folder of page files) or its dashboard CSV; a DiscordLevelingSystem database;
a LevelUp (Red) server or cog backup; a Lurkr export.

Without ``--apply`` nothing is written: the import says what it would do.
With it, everything is one transaction, every member changed gets an
``import`` entry in the XP audit log, and a ``!rewards sync`` is queued for
the bot's next start when the server has reward roles. A file that is not
right (not the format it looks like, truncated, the wrong server, XP that is
negative, fractional or absurd, a member twice) is refused with one line and
changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import levels
from db import Database
from server_settings import MAX_XP_PER_MESSAGE, SETTINGS, rewards_text
from storage import postgres, sqlite
from storage.audit import MAX_XP
from storage.imports import Extras, Imported
from storage.records import ConstraintViolated, DatabaseRefused

MAX_FILE = 256 * 1024 * 1024  # a JSON or CSV file larger than this is refused, never read whole
MODES: dict[str, Callable[[int, int], int]] = {
    "keep-higher": max,
    "replace": lambda current, imported: imported,
    "add": lambda current, imported: min(current + imported, MAX_XP),
}
READS = (
    "Tally's JSON export; MEE6's leaderboard pages (JSON) or dashboard CSV; a DiscordLevelingSystem database; "
    "a LevelUp (Red) backup; a Lurkr export"
)
SQLITE_HEADER = b"SQLite format 3\x00"
MEE6_CSV = ["id", "username", "discriminator", "xp", "level", "messages"]
BUCKETS = ((0, 0), (1, 4), (5, 9), (10, 19), (20, 49), (50, 99), (100, None))


class ImportRefused(Exception):
    """The file cannot be imported; the message is one line saying why (exit code 2)."""


@dataclass
class Member:
    user_id: int
    xp: int | None  # total XP, where the file has it
    level: int | None  # level on the other bot's curve, where the file has it
    name: str = ""
    first_seen: int | None = None


@dataclass
class Found:
    """What a file holds for one server."""

    kind: str  # the format, as the report names it
    members: dict[int, Member] = field(default_factory=dict)
    guilds: set[int] = field(default_factory=set)  # the servers the file says it is from
    xp_range: tuple[int, int] | None = None  # the other bot's XP per message
    rewards: list[tuple[int, int]] = field(default_factory=list)  # (level, role ID)
    settings: dict[str, str] = field(default_factory=dict)  # Tally's own, as stored
    extras: Extras | None = None  # Tally's own: coins, ledger, cases
    curve: str | None = None  # the level curve the other bot uses, where Tally has it too
    note: str = ""  # a detail for the report (pages read, duplicates resolved)
    pages: int = 0  # MEE6 pages read

    def add(self, member: Member) -> None:
        if member.user_id in self.members:
            raise ImportRefused(f"member {member.user_id} appears twice in the file; which one counts is unclear")
        self.members[member.user_id] = member


# -- reading values -----------------------------------------------------------------------


def _digits(text: str) -> bool:
    """Plain ASCII digits, few enough for any ID or count (``"²".isdigit()`` is True, ``int("²")`` fails)."""
    return text.isascii() and text.isdigit() and len(text) <= 20


def _id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not _digits(str(value)):
        raise ImportRefused(f"{what} {_shown(value)} is not a Discord ID")
    number = int(value)
    if not 0 < number < 2**63:
        raise ImportRefused(f"{what} {_shown(value)} is not a Discord ID")
    return number


def _count(value: Any, what: str, *, whole_floats: bool = False, floor_floats: bool = False) -> int:
    """A whole number of 0 or more, at most MAX_XP; one line for anything else."""
    if isinstance(value, float) and (floor_floats or (whole_floats and value.is_integer())):
        if value != value or value in (float("inf"), float("-inf")):
            raise ImportRefused(f"{what} is {value}, not a number")
        if value < 0:
            raise ImportRefused(f"{what} is {value:,}, below 0")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ImportRefused(f"{what} is {_shown(value)}, not a whole number")
    if value < 0:
        raise ImportRefused(f"{what} is {value:,}, below 0")
    if value > MAX_XP:
        raise ImportRefused(f"{what} is {value:,}, more than the {MAX_XP:,} any member can hold: not real data")
    return value


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _text(value: Any) -> str:
    return value[:100] if isinstance(value, str) else ""


# -- finding the format --------------------------------------------------------------------


def read(path: Path, guild_id: int) -> Found:
    """What ``path`` (a file, or a folder of MEE6 pages) holds for server ``guild_id``.

    ImportRefused with one line when it cannot be imported: not a format
    Tally reads, damaged, from another server, or with values no bot keeps.
    Whatever else goes wrong while reading it becomes such a line too.
    """
    try:
        return _read(path, guild_id)
    except ImportRefused:
        raise
    except OSError as exc:
        raise ImportRefused(f"cannot read {exc.filename or path} ({exc.strerror or exc})") from None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, csv.Error) as exc:
        raise ImportRefused(
            f"{path.name} is not in the shape Tally expected ({type(exc).__name__}: {exc})"[:300]
        ) from None


def _read(path: Path, guild_id: int) -> Found:
    if path.is_dir():
        pages = sorted(path.glob("*.json"))
        if not pages:
            raise ImportRefused(f"{path} is a folder without .json files (Tally reads a folder of MEE6 pages)")
        found = Found("MEE6 leaderboard pages", note=f"{len(pages)} files")
        for page in pages:
            for document in _documents(_text_of(page), page):
                _mee6_document(document, found, page)
        return _checked(found, guild_id)
    if not path.is_file():
        raise ImportRefused(f"there is no file at {path}")
    with open(path, "rb") as file:
        head = file.read(len(SQLITE_HEADER))
    if head == SQLITE_HEADER:
        return _dls(path, guild_id)
    text = _text_of(path)
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith(("{", "[")):
        return _json(_documents(stripped, path), path, guild_id)
    if stripped.split("\n", 1)[0].strip().lower().replace(" ", "").split(",") == MEE6_CSV:
        return _mee6_csv(stripped)
    raise ImportRefused(f"{path.name} is not a format Tally reads. It reads: {READS}")


def _checked(found: Found, guild_id: int) -> Found:
    if found.guilds and found.guilds != {guild_id}:
        shown = ", ".join(map(str, sorted(found.guilds)))
        raise ImportRefused(f"the file is from server {shown}, not {guild_id}: is --guild right?")
    return found


def _text_of(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_FILE:
        raise ImportRefused(
            f"{path.name} is {size / 2**20:,.0f} MiB; Tally reads import files of up to {MAX_FILE // 2**20} MiB "
            "(save MEE6's leaderboard one page a file, in a folder)"
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ImportRefused(f"{path.name} is not text (UTF-8) at byte {exc.start:,}: is it the right file?") from None


def _documents(text: str, path: Path) -> list[Any]:
    """Every JSON document in ``text``: one, or several saved one after another."""
    decoder = json.JSONDecoder()
    documents, at = [], 0
    text = text.lstrip("\ufeff")
    while True:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        if at >= len(text):
            if not documents:
                raise ImportRefused(f"{path.name} is empty")
            return documents
        try:
            document, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            ends_early = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
            truncated = " (the file ends too early: a truncated download?)" if ends_early else ""
            raise ImportRefused(
                f"{path.name} is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{truncated}"
            ) from None
        except (ValueError, RecursionError) as exc:  # a number of thousands of digits, nesting past any sense
            raise ImportRefused(f"{path.name} is not JSON any bot writes ({type(exc).__name__}: {exc})"[:300]) from None
        documents.append(document)


def _json(documents: list[Any], path: Path, guild_id: int) -> Found:
    first = documents[0]
    if isinstance(first, dict) and first.get("format") == "tally-export":
        if len(documents) > 1:
            raise ImportRefused(f"{path.name} holds more than one Tally export; import them one at a time")
        return _tally(first, guild_id)
    if isinstance(first, list) or (isinstance(first, dict) and "players" in first):
        found = Found("MEE6 leaderboard pages")
        for document in documents:
            _mee6_document(document, found, path)
        found.note = f"{found.pages} page{'' if found.pages == 1 else 's'}"
        return _checked(found, guild_id)
    if len(documents) == 1 and isinstance(first, dict) and isinstance(first.get("levels"), list):
        return _lurkr(first)
    if len(documents) == 1 and isinstance(first, dict) and isinstance(first.get("configs"), dict):
        return _levelup_cog(first, guild_id)
    if len(documents) == 1 and isinstance(first, dict) and isinstance(first.get("users"), dict):
        found = Found("LevelUp (Red) server backup")
        _levelup_server(first, found)
        return found
    raise ImportRefused(f"{path.name} is JSON, but not a format Tally reads. It reads: {READS}")


# -- MEE6 ---------------------------------------------------------------------------------


def _mee6_document(document: Any, found: Found, path: Path) -> None:
    """One MEE6 page (``{"players": [...], ...}``), a list of pages, or a list of one page's players."""
    if isinstance(document, list):
        players = []
        for item in document:
            if isinstance(item, list) or (isinstance(item, dict) and "players" in item):
                _mee6_document(item, found, path)
            else:
                players.append(item)
        if players:  # one page's players, as a list
            found.pages += 1
            for player in players:
                _mee6_player(player, found)
        return
    if not isinstance(document, dict) or not isinstance(document.get("players"), list):
        raise ImportRefused(f"{path.name} holds something other than MEE6 leaderboard pages")
    found.pages += 1
    guild = document.get("guild")
    if isinstance(guild, dict) and "id" in guild:
        found.guilds.add(_id(guild["id"], "the page's server ID"))
    for player in document["players"]:
        _mee6_player(player, found)
    per_message = document.get("xp_per_message")
    if isinstance(per_message, list) and len(per_message) == 2:
        rate = document.get("xp_rate", 1)
        rate = rate if isinstance(rate, int | float) and not isinstance(rate, bool) and 0 < rate <= 100 else 1
        low, high = (_count(value, "MEE6's XP per message", whole_floats=True) for value in per_message)
        found.xp_range = (max(1, round(low * rate)), max(1, round(high * rate)))
        found.curve = "mee6"
    rewards = document.get("role_rewards") or []
    if not isinstance(rewards, list):
        raise ImportRefused(f"{path.name}: role_rewards is {_shown(rewards)}, not a list")
    if rewards:
        found.rewards = [_mee6_reward(reward) for reward in rewards]


def _mee6_player(player: Any, found: Found) -> None:
    if not isinstance(player, dict) or "id" not in player:
        raise ImportRefused(f"a MEE6 player {_shown(player)} has no id")
    user_id = _id(player["id"], "a player's id")
    if "guild_id" in player:
        found.guilds.add(_id(player["guild_id"], f"player {user_id}'s guild_id"))
    xp = _count(player.get("xp"), f"player {user_id}'s xp")
    level = _count(player["level"], f"player {user_id}'s level") if "level" in player else None
    found.add(Member(user_id, xp, level, _text(player.get("username"))))


def _mee6_reward(reward: Any) -> tuple[int, int]:
    """``{"rank": 5, "role": {"id": ...}}`` or ``{"rank": 5, "role_id": ...}``: both are found in saved pages."""
    if not isinstance(reward, dict) or "rank" not in reward:
        raise ImportRefused(f"a MEE6 role reward {_shown(reward)} has no rank")
    role = reward.get("role")
    role_id = role.get("id") if isinstance(role, dict) else reward.get("role_id")
    return _count(reward["rank"], "a role reward's rank"), _id(role_id, "a role reward's role")


def _mee6_csv(text: str) -> Found:
    found = Found("MEE6 dashboard CSV", curve="mee6")
    rows = csv.reader(io.StringIO(text))
    next(rows)
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(MEE6_CSV):
            raise ImportRefused(f"line {line} of the CSV has {len(row)} fields, not {len(MEE6_CSV)}")
        user_id, name, _, xp, level, _ = row
        who = f"line {line}"
        found.add(
            Member(
                _id(user_id.strip(), f"{who}: the id"),
                _count(_int(xp, who), f"{who}: xp"),
                _count(_int(level, who), f"{who}: level"),
                name[:100],
            )
        )
    return found


def _int(text: str, where: str) -> int:
    text = text.strip()
    if not _digits(text.removeprefix("-")):
        raise ImportRefused(f"{where}: {text[:40]!r} is not a whole number")
    return int(text)


# -- DiscordLevelingSystem ------------------------------------------------------------------

DLS_ROWS = "SELECT member_id, member_name, member_level, member_total_xp FROM leaderboard WHERE guild_id = ?"
DLS_GUILDS = "SELECT DISTINCT guild_id FROM leaderboard"
DLS_ONE_SERVER = "SELECT member_id, member_name, member_level, member_total_xp FROM leaderboard"


def _dls(path: Path, guild_id: int) -> Found:
    """A DiscordLevelingSystem database: table ``leaderboard``, no key (duplicates: the highest total wins).

    ``member_xp`` is the XP inside the level; ``member_total_xp`` is what Tally imports.
    The older layout has no ``guild_id`` column: one server a file.
    """
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(leaderboard)")}
            if not columns:
                raise ImportRefused(
                    f"{path.name} is a SQLite file without a leaderboard table: not DiscordLevelingSystem's"
                )
            if "guild_id" in columns:
                rows = conn.execute(DLS_ROWS, (guild_id,)).fetchall()
                if not rows:
                    held = ", ".join(str(row[0]) for row in conn.execute(DLS_GUILDS).fetchall()[:5]) or "none"
                    raise ImportRefused(f"the database holds no rows for server {guild_id} (it holds: {held})")
            else:
                rows = conn.execute(DLS_ONE_SERVER).fetchall()
    except sqlite3.DatabaseError as exc:
        raise ImportRefused(f"{path.name} is not a DiscordLevelingSystem database ({exc})") from None
    found = Found("DiscordLevelingSystem database" + ("" if "guild_id" in columns else " (older layout)"))
    duplicates = 0
    for member_id, name, level, total in rows:
        user_id = _id(member_id, "a member_id")
        member = Member(
            user_id,
            _count(total, f"member {user_id}'s member_total_xp"),
            _count(level, f"member {user_id}'s member_level"),
            _text(name),
        )
        kept = found.members.get(user_id)
        if kept is not None:
            duplicates += 1
            if kept.xp >= member.xp:
                continue
        found.members[user_id] = member
    if duplicates:
        found.note = f"{duplicates:,} duplicate rows resolved by the highest total"
    return found


# -- LevelUp (Red) and Lurkr ----------------------------------------------------------------


def _levelup_cog(document: dict, guild_id: int) -> Found:
    """A LevelUp whole-cog backup: ``configs`` holds each server's settings and users."""
    servers = document["configs"]
    settings = next((conf for key, conf in servers.items() if str(key) == str(guild_id)), None)
    if not isinstance(settings, dict):
        held = ", ".join(sorted(map(str, servers))[:5]) or "none"
        raise ImportRefused(f"the LevelUp backup holds no server {guild_id} (it holds: {held})")
    found = Found("LevelUp (Red) cog backup")
    _levelup_server(settings, found)
    return found


def _levelup_server(settings: dict, found: Found) -> None:
    """LevelUp's ``GuildSettings``: ``users`` maps user IDs to profiles whose ``xp`` is a float (rounded down)."""
    users = settings.get("users")
    if not isinstance(users, dict):
        raise ImportRefused("the LevelUp backup holds no users")
    for key, profile in users.items():
        user_id = _id(key, "a user ID")
        if not isinstance(profile, dict):
            raise ImportRefused(f"user {user_id}'s profile is not an object")
        xp = _count(profile.get("xp", 0), f"user {user_id}'s xp", floor_floats=True)
        found.add(Member(user_id, xp, _count(profile.get("level", 0), f"user {user_id}'s level")))
    per_message = settings.get("xp")
    if isinstance(per_message, list) and len(per_message) == 2:
        low, high = (_count(value, "LevelUp's XP per message", whole_floats=True) for value in per_message)
        found.xp_range = (max(1, low), max(1, high))
    roles = settings.get("levelroles") or {}
    if not isinstance(roles, dict):
        raise ImportRefused("the LevelUp backup's levelroles is not a mapping of level to role")
    found.rewards = [
        (_count(_int(str(level), "a level role"), "a level role's level"), _id(role, "a level role"))
        for level, role in roles.items()
    ]


def _lurkr(document: dict) -> Found:
    """A Lurkr export: ``{"levels": [{"userId", "xp", "level"}, ...]}``."""
    found = Found("Lurkr export")
    for entry in document["levels"]:
        if not isinstance(entry, dict) or "userId" not in entry:
            raise ImportRefused(f"a Lurkr entry {_shown(entry)} has no userId")
        user_id = _id(entry["userId"], "a userId")
        level = _count(entry["level"], f"user {user_id}'s level") if "level" in entry else None
        found.add(Member(user_id, _count(entry.get("xp"), f"user {user_id}'s xp"), level))
    return found


# -- Tally's own export ---------------------------------------------------------------------


def _tally(document: dict, guild_id: int) -> Found:
    if document.get("version") != 1:
        raise ImportRefused(f"this Tally reads version 1 of its export, not {_shown(document.get('version'))}")
    guilds = document.get("guilds")
    if not isinstance(guilds, list) or not all(isinstance(g, dict) for g in guilds):
        raise ImportRefused("the Tally export has no list of guilds")
    server = next((g for g in guilds if str(g.get("guild_id")) == str(guild_id)), None)
    if server is None:
        held = ", ".join(str(g.get("guild_id")) for g in guilds[:5]) or "none"
        raise ImportRefused(f"the export holds no server {guild_id} (it holds: {held})")
    found = Found("Tally export")
    for member in _list(server, "members"):
        user_id = _id(member.get("user_id"), "a member's user_id")
        found.add(
            Member(
                user_id,
                _count(member.get("xp"), f"member {user_id}'s xp"),
                _count(member["level"], f"member {user_id}'s level") if "level" in member else None,
                _text(member.get("name")),
                _count(member.get("first_seen"), f"member {user_id}'s first_seen"),
            )
        )
    settings = server.get("settings") or {}
    if not isinstance(settings, dict) or not all(isinstance(v, str) for v in settings.values()):
        raise ImportRefused("the export's settings are not names with text values")
    found.settings = dict(settings)
    wallets = [
        (
            _id(w.get("user_id"), "a wallet's user_id"),
            _count(w.get("coins"), "a wallet's coins"),
            None if w.get("last_daily") is None else _count(w["last_daily"], "a wallet's last_daily"),
            _text(w.get("name")),
        )
        for w in _list(server, "wallets")
    ]
    ledger = [
        (
            None if m.get("from_id") is None else _id(m["from_id"], "a movement's from_id"),
            None if m.get("to_id") is None else _id(m["to_id"], "a movement's to_id"),
            _count(m.get("amount"), "a movement's amount"),
            str(m.get("kind")),
            _id(m.get("actor_id"), "a movement's actor_id"),
            m.get("reason") if isinstance(m.get("reason"), str) else None,
            _count(m.get("created_at"), "a movement's created_at"),
        )
        for m in _list(server, "ledger")
    ]
    cases, reasons = [], []
    for case in _list(server, "cases"):
        number = _count(case.get("number"), "a case's number")
        cases.append(
            (
                number,
                str(case.get("action")),
                _id(case.get("target_id"), "a case's target_id"),
                _text(case.get("target_name")),
                _id(case.get("moderator_id"), "a case's moderator_id"),
                case.get("reason") if isinstance(case.get("reason"), str) else None,
                _count(case.get("created_at"), "a case's created_at"),
            )
        )
        for old in _list(case, "earlier_reasons"):
            reasons.append(
                (
                    number,
                    old.get("reason") if isinstance(old.get("reason"), str) else None,
                    _id(old.get("moderator_id"), "a reason's moderator_id"),
                    _count(old.get("replaced_at"), "a reason's replaced_at"),
                )
            )
    found.extras = Extras(wallets, ledger, cases, reasons)
    return found


def _list(parent: dict, key: str) -> list[dict]:
    items = parent.get(key) or []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ImportRefused(f"the export's {key} is not a list of objects")
    return items


# -- the command ----------------------------------------------------------------------------


def _new_xp(member: Member, by: str, curve: levels.Curve) -> int:
    if by == "level":
        if member.level is None:
            raise ImportRefused(f"--by level: member {member.user_id} has no level in the file")
        return min(curve.total_xp_for(member.level), MAX_XP)
    if member.xp is None:
        raise ImportRefused(f"--by xp: member {member.user_id} has no XP in the file (try --by level)")
    return member.xp


def _settings_from(found: Found, *, check: bool) -> dict[str, str]:
    """The file's settings as Tally stores them; with ``check``, each read as !settings would (to be applied)."""
    settings = dict(found.settings)
    if found.xp_range is not None:
        low, high = (min(value, MAX_XP_PER_MESSAGE) for value in found.xp_range)
        settings["xp"] = f"{low}" if low == high else f"{low}-{high}"
    if found.rewards and "rewards" not in settings:
        settings["rewards"] = rewards_text(found.rewards)
    if found.curve is not None:
        settings.setdefault("curve", found.curve)
    for name, value in settings.items() if check else ():
        setting = SETTINGS.get(name)
        if setting is None:
            raise ImportRefused(f"the file's setting {name!r} is not one Tally has")
        try:
            setting.read(value)
        except ValueError as problem:
            raise ImportRefused(f"the file's setting {name} = {value!r} will not do: {problem}") from None
    return settings


def _distribution(values, curve: levels.Curve) -> list[int]:
    counts = [0] * len(BUCKETS)
    for xp in values:
        level = curve.level_for(xp)
        for i, (low, high) in enumerate(BUCKETS):
            if level >= low and (high is None or level <= high):
                counts[i] += 1
                break
    return counts


@dataclass(frozen=True)
class Request:
    """What ``python bot.py import`` was asked: the file, the server, and the options."""

    path: Path
    guild_id: int
    apply: bool = False
    mode: str = "keep-higher"
    by: str = "xp"
    include_settings: bool = False
    default_curve: str = "linear"  # the owner's LEVEL_CURVE, for a server that set none


async def run(target: Path | str, request: Request, out: TextIO, err: TextIO) -> int:
    """``python bot.py import``: the exit code (0 done or shown, 2 refused with one line on ``err``)."""
    held = None
    try:
        found = await asyncio.to_thread(read, request.path, request.guild_id)
        settings = _settings_from(found, check=request.include_settings)
        if request.apply:
            held = await _alone(target)
        elif not postgres.is_url(str(target)) and not Path(target).exists():
            # a dry run never creates a database (a mistyped DATABASE_PATH would leave an empty one behind)
            return await _import(None, found, settings, request, out)
        db = await Database.open(target)
        try:
            return await _import(db, found, settings, request, out)
        finally:
            await db.close()
    except (ImportRefused, DatabaseRefused) as refused:
        print(f"tally import: {refused}", file=err)
        return 2
    except ConstraintViolated as exc:  # the one transaction rolled back
        print(f"tally import: the database refused a row of the file ({exc}); nothing was imported", file=err)
        return 2
    finally:
        if held is not None:
            await held()


async def _alone(target: Path | str):
    """Keep every Tally out while the import writes (the bot holds each server's board in memory)."""
    stop = "a Tally bot is running on this database; stop it first (a dry run works while it runs)"
    if isinstance(target, str) and postgres.is_url(target):
        conn = await postgres.hold_alone(target)
        if conn is None:
            raise ImportRefused(stop)
        return conn.close
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock = sqlite.hold_exclusive(path)
    except DatabaseRefused as refused:
        raise ImportRefused(stop if "another Tally" in str(refused) else str(refused)) from None

    async def release() -> None:
        os.close(lock)

    return release


async def _import(db: Database | None, found: Found, settings: dict[str, str], request: Request, out: TextIO) -> int:
    guild_id, mode, by, include_settings = request.guild_id, request.mode, request.by, request.include_settings
    stored = (await db.stored_settings()).get(guild_id, {}) if db is not None else {}  # None: no database yet
    curve_name = (settings if include_settings else stored).get("curve") or stored.get("curve") or request.default_curve
    curve = levels.curve(curve_name)
    note = f", {found.note}" if found.note else ""
    print(f"found: {found.kind}{note}: {len(found.members):,} members, for server {guild_id}", file=out)
    if by == "level":
        print(
            f"--by level: each member gets the least XP of their level on this server's curve ({curve_name})", file=out
        )
    imported = {user_id: _new_xp(member, by, curve) for user_id, member in found.members.items()}
    current = dict(await db.guild_xp(guild_id)) if db is not None else {}
    new_xp = MODES[mode]
    counts = Counter()
    after = dict(current)
    for user_id, xp in imported.items():
        before = current.get(user_id)
        value = new_xp(before or 0, xp)
        after[user_id] = value
        counts[
            "added" if before is None else "raised" if value > before else "lowered" if value < before else "unchanged"
        ] += 1
    print(
        f"mode {mode}: {counts['added']:,} added, {counts['raised']:,} raised, {counts['lowered']:,} lowered, "
        f"{counts['unchanged']:,} unchanged",
        file=out,
    )
    levels_before = _distribution(current.values(), curve)
    levels_after = _distribution((xp for xp in after.values() if xp), curve)
    print(f"levels on the {curve_name} curve, members before -> after:", file=out)
    for (low, high), was, now in zip(BUCKETS, levels_before, levels_after, strict=True):
        span = f"{low}+" if high is None else (f"{low}" if low == high else f"{low}-{high}")
        print(f"  level {span:<7} {was:>10,} -> {now:,}", file=out)
    if settings:
        shown = ", ".join(f"{name} {value}" for name, value in sorted(settings.items()))
        if include_settings:
            print(f"settings to apply: {shown}", file=out)
        else:
            print(f"settings in the file (applied only with --include-settings): {shown}", file=out)
    if not request.apply:
        print("dry run: nothing was changed. Run it again with --apply to write it.", file=out)
        return 0
    rewards_after = (settings if include_settings else stored).get("rewards") or stored.get("rewards")
    channel = next((int(v) for v in (stored.get("levelup"), stored.get("modlog")) if v and v.isdigit()), 0)
    result = await db.import_guild(
        guild_id,
        [
            Imported(user_id, imported[user_id], member.name, member.first_seen)
            for user_id, member in found.members.items()
        ],
        new_xp,
        f"import: {found.kind} ({request.path.name})",
        settings=settings if include_settings else None,
        extras=found.extras,
        sync_channel=channel if rewards_after else None,
    )
    entries = result.entries
    logged = (
        f"#{entries[0].number:,} to #{entries[-1].number:,}"
        if len(entries) > 1
        else (f"#{entries[0].number:,}" if entries else "nothing")
    )
    print(f"imported: {len(entries):,} members changed, each in the XP audit log ({logged})", file=out)
    if found.extras is not None:
        print(
            "coins, ledger and cases: "
            + ("imported" if result.extras_written else "left out: the server already has some"),
            file=out,
        )
    if rewards_after and entries:
        print("reward roles: a !rewards sync is queued; it runs when Tally starts", file=out)
    return 0
