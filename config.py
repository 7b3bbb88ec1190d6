"""Settings: the environment (and ``.env``) turned into one frozen dataclass.

Every variable is documented in ``.env.example``. A missing or malformed value
raises :class:`ConfigError` with one line that names the variable and the
expected form; the token's value is never part of a message.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from levels import CURVE_NAMES, CurveName
from storage.postgres import check_url
from storage.records import DatabaseRefused

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_PREFIX_LENGTH = 5


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line for the owner."""


@dataclass(frozen=True, slots=True)
class Settings:
    token: str
    database_path: Path
    default_prefix: str
    xp_per_message: int
    xp_cooldown_seconds: int
    xp_flush_seconds: float
    level_curve: CurveName
    log_level: str
    daily_coins: int = 100
    coins_per_level: int = 0
    shutdown_save_seconds: float = 30.0
    connect_timeout_seconds: float = 30.0  # one try to reach Discord; then the next, after a pause
    database_url: str | None = None  # PostgreSQL; wins over database_path when set
    shard_count: int | None = None  # None: one process, Discord's recommended count
    shard_ids: tuple[int, ...] | None = None  # the shards this process runs (None: all of them)
    database_path_given: bool = False  # DATABASE_PATH was set (the log says which database wins)

    def __repr__(self) -> str:  # keep the token out of any accidental log line
        return f"Settings(database_path={str(self.database_path)!r}, level_curve={self.level_curve!r}, ...)"


# Letters that draw nothing though Unicode does not call them spaces or format characters.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")
# Control, format (zero-width, direction marks), surrogate, private-use and unassigned characters,
# line and paragraph separators, and marks that draw on another character or not at all
# (combining marks, variation selectors, U+034F): a prefix must be what it looks like.
_INVISIBLE_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Mn", "Me"))


def _invisible(ch: str) -> bool:
    return unicodedata.category(ch) in _INVISIBLE_CATEGORIES or ch in _BLANK_LETTERS


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot be a command prefix, or None when it can."""
    if not prefix:
        return "a prefix needs at least 1 character"
    if "@" in prefix or "<" in prefix:
        return "a prefix cannot contain a mention (@ or <)"
    if any(ch.isspace() for ch in prefix):
        return "a prefix cannot contain spaces"
    if any(_invisible(ch) for ch in prefix):
        return "a prefix cannot contain control or invisible characters"
    if "`" in prefix:
        return "a prefix cannot contain backticks"
    if prefix.startswith("/"):
        return "a prefix cannot start with / (that belongs to slash commands)"
    if len(prefix) > MAX_PREFIX_LENGTH:
        return f"a prefix can be at most {MAX_PREFIX_LENGTH} characters long"
    return None


def _whole_number(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high} (got {raw!r})")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:  # also refuses nan and inf
        raise ConfigError(f"{name} must be a number of seconds from {low:g} to {high:g} (got {raw!r})")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() not in (choice.lower() for choice in choices):
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {raw!r})")
    return next(choice for choice in choices if choice.lower() == raw.lower())


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise ConfigError on the first bad one."""
    env = os.environ if env is None else env

    token = env.get("DISCORD_TOKEN", "").strip()
    if not token:
        raise ConfigError(
            "DISCORD_TOKEN is missing: copy .env.example to .env and paste your bot's token "
            "from the Developer Portal (Bot > Reset Token)"
        )
    if any(ch.isspace() for ch in token) or len(token) < 20:
        raise ConfigError("DISCORD_TOKEN does not look like a bot token (one line, no spaces, about 70 characters)")

    database_url, database_path = database_target(env)
    shard_count, shard_ids = _shards(env)
    if database_url is None and shard_ids is not None and len(shard_ids) < shard_count:
        raise ConfigError(
            f"SHARD_IDS runs {len(shard_ids)} of the bot's {shard_count} shards here, so other processes run "
            "the rest, but SQLite is for one process: set DATABASE_URL to a PostgreSQL database they share, "
            "or unset SHARD_IDS to run every shard in this process"
        )

    default_prefix = env.get("DEFAULT_PREFIX", "").strip() or "!"
    problem = prefix_problem(default_prefix)
    if problem:
        raise ConfigError(f"DEFAULT_PREFIX is not a valid prefix: {problem} (got {default_prefix!r})")

    return Settings(
        token=token,
        database_path=database_path,
        default_prefix=default_prefix,
        xp_per_message=_whole_number(env, "XP_PER_MESSAGE", 5, 1, 1000),
        xp_cooldown_seconds=_whole_number(env, "XP_COOLDOWN_SECONDS", 60, 0, 86400),
        xp_flush_seconds=_seconds(env, "XP_FLUSH_SECONDS", 1.0, 0.05, 60.0),
        level_curve=level_curve(env),  # type: ignore[arg-type]
        log_level=_choice(env, "LOG_LEVEL", "INFO", LOG_LEVELS),
        daily_coins=_whole_number(env, "DAILY_COINS", 100, 1, 1_000_000),
        coins_per_level=_whole_number(env, "COINS_PER_LEVEL", 0, 0, 1_000_000),
        shutdown_save_seconds=_seconds(env, "SHUTDOWN_SAVE_SECONDS", 30.0, 1.0, 600.0),
        connect_timeout_seconds=_seconds(env, "CONNECT_TIMEOUT_SECONDS", 30.0, 1.0, 30.0),
        database_url=database_url,
        database_path_given=bool(env.get("DATABASE_PATH", "").strip()),
        shard_count=shard_count,
        shard_ids=shard_ids,
    )


def level_curve(env: Mapping[str, str] | None = None) -> str:
    """LEVEL_CURVE: the level curve of servers that set none (ConfigError for an unknown one)."""
    return _choice(os.environ if env is None else env, "LEVEL_CURVE", "linear", CURVE_NAMES)


def database_target(env: Mapping[str, str] | None = None) -> tuple[str | None, Path]:
    """DATABASE_URL (None when unset) and DATABASE_PATH; the URL wins where both are set."""
    env = os.environ if env is None else env
    database_url = env.get("DATABASE_URL", "").strip() or None
    if database_url is not None:
        try:
            check_url(database_url)
        except DatabaseRefused as exc:
            raise ConfigError(str(exc)) from None
    database_path = Path(env.get("DATABASE_PATH", "").strip() or "data/tally.db")
    if database_path.exists() and database_path.is_dir():
        raise ConfigError(f"DATABASE_PATH must name a file, not a folder (got {str(database_path)!r})")
    return database_url, database_path


def _shards(env: Mapping[str, str]) -> tuple[int | None, tuple[int, ...] | None]:
    """SHARD_COUNT and SHARD_IDS: how many shards the bot has, and which this process runs."""
    count = _whole_number(env, "SHARD_COUNT", 0, 1, 10_000) or None
    raw = env.get("SHARD_IDS", "").strip()
    if not raw:
        return count, None
    if count is None:
        raise ConfigError("SHARD_IDS needs SHARD_COUNT too (for example SHARD_COUNT=4 and SHARD_IDS=0,1)")
    try:
        ids = tuple(sorted({int(part) for part in raw.split(",")}))
    except ValueError:
        ids = ()
    if not ids or not all(0 <= shard < count for shard in ids):
        raise ConfigError(
            f"SHARD_IDS must be shard numbers from 0 to {count - 1} separated by commas, such as 0,1 (got {raw!r})"
        )
    return count, ids
