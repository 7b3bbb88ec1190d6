"""``python bot.py backup`` and ``python bot.py restore``: verified, dated copies of the database, and the way back.

SQLite: the source is opened read-only (a missing file is an error, never an
empty backup) and copied with SQLite's online backup inside one read
transaction, so the copy is consistent while Tally runs and writes; the copy
must then pass ``PRAGMA integrity_check`` and hold as many rows per table as
the source did at that moment. It is written under a temporary name, synced,
and only then takes its dated name, so a backup that fails leaves no file
that looks good.

PostgreSQL: ``pg_dump`` in its custom format (the password goes to it in
the environment, never on its command line), checked with
``pg_restore --list``.

A restore checks the backup first, refuses while a Tally runs on the
database, and keeps the current database aside (SQLite: a copy beside it;
PostgreSQL: a dump in the backup folder) before putting the backup back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import TextIO

import asyncpg

from storage import postgres, sqlite
from storage.copy import COUNT_CASE_REASONS, TABLES
from storage.records import DatabaseRefused
from storage.schema import SCHEMA_VERSION

EXIT_FIX, EXIT_FAILED = 2, 1
COUNTS = [(table.name, table.count) for table in TABLES] + [("case_reasons", COUNT_CASE_REASONS)]
PG_TIMEOUT = 3600  # seconds a pg_dump or pg_restore may take
# The tables schema versions after the first added, newest first, each with its one fixed DROP statement.
NEWER_TABLES = (
    ("xp_audit", "DROP TABLE xp_audit"),
    ("reward_syncs", "DROP TABLE reward_syncs"),
    ("case_reasons", "DROP TABLE case_reasons"),
    ("cases", "DROP TABLE cases"),
    ("ledger", "DROP TABLE ledger"),
    ("wallets", "DROP TABLE wallets"),
    ("tally_flushes", "DROP TABLE tally_flushes"),
)
DATED = re.compile(r"tally-(\d{8}-\d{6})(?:-(\d+))?(\.db|\.dump)")  # a backup's name: its time, then -2, -3 ...


class BackupFailed(Exception):
    """One line for the owner; ``code`` is the exit code (2: something to fix first, 1: it failed)."""

    def __init__(self, line: str, code: int = EXIT_FIX) -> None:
        super().__init__(line)
        self.code = code


def default_folder(target: Path | str, database_path: Path) -> Path:
    """Where backups go without ``--to``: ``backups`` beside the SQLite file (or the data folder for PostgreSQL)."""
    folder = database_path.parent if isinstance(target, str) else Path(target).parent
    return folder / "backups"


def backup(target: Path | str, folder: Path, keep: int | None, out: TextIO, err: TextIO) -> int:
    """Back up the database at ``target`` (a SQLite path or a PostgreSQL URL) into ``folder``; the exit code.

    What was made goes to ``out``, a failure's one line to ``err``.
    """
    try:
        if isinstance(target, str) and postgres.is_url(target):
            made, summary = _backup_postgres(target, folder)
        else:
            made, summary = _backup_sqlite(Path(target), folder)
        removed = _rotate(folder, made, keep)
    except BackupFailed as failed:
        print(f"tally backup: {failed}", file=err)
        return failed.code
    except OSError as exc:
        print(f"tally backup: cannot write the backup in {folder} ({exc.strerror or exc})", file=err)
        return EXIT_FIX
    print(f"backed up to {made} ({made.stat().st_size:,} bytes, verified: {summary})", file=out)
    for old in removed:
        print(f"removed the older backup {old} (--keep {keep})", file=out)
    return 0


def restore(target: Path | str, file: Path, backups: Path, out: TextIO, err: TextIO) -> int:
    """Put the backup ``file`` back as the database at ``target``, keeping the current one aside; the exit code."""
    try:
        if isinstance(target, str) and postgres.is_url(target):
            aside = _restore_postgres(target, file, backups)
        else:
            aside = _restore_sqlite(Path(target), file)
    except BackupFailed as failed:
        print(f"tally restore: {failed}", file=err)
        return failed.code
    except DatabaseRefused as refused:
        print(f"tally restore: {refused}", file=err)
        return EXIT_FIX
    kept = f"; the database it replaced is kept as {aside}" if aside else ""
    print(f"restored {file}{kept}. Start Tally again.", file=out)
    return 0


# -- SQLite ------------------------------------------------------------------------------


def _backup_sqlite(source: Path, folder: Path) -> tuple[Path, str]:
    if not source.is_file():
        raise BackupFailed(f"there is no database at {source} to back up (check DATABASE_PATH)")
    folder.mkdir(parents=True, exist_ok=True)
    made = _new_name(folder, ".db")
    partial = made.with_name(f"{made.name}.{os.getpid()}.partial")  # two backups in one second: two names
    try:
        src = _read_only(source)
    except sqlite3.Error as exc:
        raise BackupFailed(f"cannot open {source} to back it up ({exc})") from exc
    try:
        try:
            src.execute("BEGIN")  # one read transaction: the counts and the copy see the same moment
            if src.execute("PRAGMA user_version").fetchone()[0] < 1 or "members" not in _tables(src):
                raise BackupFailed(f"{source} is not a Tally database (check DATABASE_PATH)")
            counts = _counts(src)
            with contextlib.closing(sqlite3.connect(partial)) as copy:
                src.backup(copy)
                copy.execute("PRAGMA journal_mode = DELETE")  # a file on its own: no -wal or -shm beside it
            src.rollback()
        except sqlite3.DatabaseError as exc:
            raise BackupFailed(f"cannot read {source} ({exc}); is it a Tally database?", EXIT_FAILED) from exc
        finally:
            src.close()
        problem = _check(partial, counts)
        if problem:
            raise BackupFailed(f"the copy of {source} did not verify ({problem}); nothing was kept", EXIT_FAILED)
        _sync(partial)
        os.replace(partial, made)
    finally:
        partial.unlink(missing_ok=True)
    return made, f"integrity ok, {sum(counts.values()):,} rows in {len(counts)} tables"


def _restore_sqlite(target: Path, file: Path) -> Path | None:
    if not file.is_file():
        raise BackupFailed(f"there is no backup at {file}")
    try:
        with contextlib.closing(_read_only(file)) as backup_db:
            counts = _counts(backup_db)
            version = backup_db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupFailed(f"{file} is not a Tally backup ({exc})") from exc
    if not 1 <= version <= SCHEMA_VERSION:
        raise BackupFailed(f"{file} has schema version {version}; this Tally reads versions 1 to {SCHEMA_VERSION}")
    if problem := _check(file, counts):
        raise BackupFailed(f"{file} is damaged ({problem}); pick another backup")
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = sqlite.hold_exclusive(target)  # refuses while a Tally runs on it; no Tally starts until we are done
    try:
        aside = None
        if target.exists():
            aside = target.with_name(f"{target.name}.before-restore-{_stamp()}")
            try:
                current, kept = sqlite3.connect(target), sqlite3.connect(aside)
                with contextlib.closing(current), contextlib.closing(kept):
                    current.backup(kept)  # with whatever its write-ahead log still holds
                    kept.execute("PRAGMA journal_mode = DELETE")
            except sqlite3.DatabaseError:  # a damaged file: kept as it is, byte for byte, with its log
                for companion in ("", "-wal"):
                    if (source := target.with_name(target.name + companion)).exists():
                        shutil.copyfile(source, aside.with_name(aside.name + companion))
            _sync(aside)
        partial = target.with_name(target.name + ".restoring")
        with contextlib.closing(_read_only(file)) as backup_db, contextlib.closing(sqlite3.connect(partial)) as copy:
            backup_db.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")  # Tally turns WAL on again when it opens it
        _sync(partial)
        for companion in ("-wal", "-shm"):  # the replaced file's log must not be replayed onto the backup
            target.with_name(target.name + companion).unlink(missing_ok=True)
        os.replace(partial, target)
        return aside
    finally:
        os.close(lock)


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per Tally table (those this file's schema version has)."""
    tables = _tables(conn)
    return {name: conn.execute(count).fetchone()[0] for name, count in COUNTS if name in tables}


def _check(path: Path, counts: dict[str, int]) -> str | None:
    """What is wrong with the SQLite file at ``path`` against the row counts it should hold, or None."""
    try:
        with contextlib.closing(_read_only(path)) as conn:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                return "integrity check: " + "; ".join(result[:3])
            found = _counts(conn)
    except sqlite3.DatabaseError as exc:
        return str(exc)
    differ = [f"{name} {found[name]:,} rows, not {counts[name]:,}" for name in counts if found[name] != counts[name]]
    return ", ".join(differ) or None


# -- PostgreSQL ------------------------------------------------------------------------


def _backup_postgres(url: str, folder: Path) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    made = _new_name(folder, ".dump")
    partial = made.with_name(f"{made.name}.{os.getpid()}.partial")
    try:
        _pg("pg_dump", url, "--format=custom", "--no-owner", f"--file={partial}")
        tables = _pg_tables(partial)
        if "members" not in tables:
            raise BackupFailed(f"the dump of {postgres.describe(url)} holds no Tally tables", EXIT_FAILED)
        _sync(partial)
        os.replace(partial, made)
    finally:
        partial.unlink(missing_ok=True)
    return made, f"pg_restore reads it: {len(tables)} tables"


def _restore_postgres(url: str, file: Path, backups: Path) -> Path:
    if not file.is_file():
        raise BackupFailed(f"there is no backup at {file}")
    try:
        tables = _pg_tables(file)
    except BackupFailed as failed:
        if failed.code == EXIT_FIX:  # no pg_restore
            raise
        raise BackupFailed(f"{file} is not a Tally backup ({failed})") from None
    if "members" not in tables:
        raise BackupFailed(f"{file} is not a backup of a Tally database")
    return asyncio.run(_restore_postgres_alone(url, file, backups, tables))


async def _restore_postgres_alone(url: str, file: Path, backups: Path, tables: set[str]) -> Path:
    """The restore itself, while this process holds the database alone (the tools block meanwhile: nothing else runs)."""
    try:
        alone = await postgres.hold_alone(url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupFailed(f"cannot reach {postgres.describe(url)} ({type(exc).__name__})") from exc
    if alone is None:
        raise BackupFailed("a Tally bot is running on this database; stop every Tally process first")
    try:
        backups.mkdir(parents=True, exist_ok=True)
        aside = backups / f"tally-before-restore-{_stamp()}.dump"
        _pg("pg_dump", url, "--format=custom", "--no-owner", f"--file={aside}")
        # A backup from an older Tally lacks the tables later versions added: they go (they are in the dump
        # kept aside), so the next start's migrations create them afresh instead of meeting rows of today.
        present = {
            row[0] for row in await alone.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        }
        async with alone.transaction():
            for table, drop in NEWER_TABLES:
                if table in present and table not in tables:
                    await alone.execute(drop)
        # one transaction: a restore that fails leaves the database as it was
        _pg(
            "pg_restore",
            url,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            str(file),
        )
        return aside
    finally:
        await alone.close()


def _pg_tables(dump: Path) -> set[str]:
    """The tables whose data a custom-format dump holds (``pg_restore --list``), or BackupFailed."""
    listing = _run(["pg_restore", "--list", str(dump)], os.environ.copy())
    tables = set()
    for line in listing.splitlines():  # "3360; 0 16390 TABLE DATA public members postgres"
        words = line.split()
        if " TABLE DATA " in line and len(words) > words.index("DATA") + 2:
            tables.add(words[words.index("DATA") + 2])
    return tables


def _pg(tool: str, url: str, *arguments: str) -> str:
    """Run a PostgreSQL client tool on ``url``: the password travels in the environment, not on the command line."""
    parts = urllib.parse.urlsplit(url)
    env = os.environ.copy()
    if parts.password is not None:
        env["PGPASSWORD"] = urllib.parse.unquote(parts.password)
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 address keeps its brackets in a URL
            host = f"[{host}]"
        user = urllib.parse.quote(urllib.parse.unquote(parts.username or ""), safe="")
        netloc = f"{user}@{host}" if user else host
        if parts.port:
            netloc += f":{parts.port}"
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return _run([tool, f"--dbname={url}", *arguments], env)


def _run(command: list[str], env: dict[str, str]) -> str:
    tool = command[0]
    if shutil.which(tool) is None:
        raise BackupFailed(
            f"{tool} is not installed: install PostgreSQL's client tools (on Debian or Ubuntu: "
            "apt install postgresql-client), the same major version as the server or newer"
        )
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BackupFailed(f"{tool} did not finish within {PG_TIMEOUT} s", EXIT_FAILED) from exc
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackupFailed(f"{tool} failed: {error}", EXIT_FAILED)
    return done.stdout


# -- files --------------------------------------------------------------------------------


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def _new_name(folder: Path, suffix: str) -> Path:
    """``tally-YYYYMMDD-HHMMSS<suffix>`` in UTC, with -2, -3 ... if one exists already (two backups in a second)."""
    stem = f"tally-{_stamp()}"
    made, n = folder / f"{stem}{suffix}", 1
    while made.exists():
        n += 1
        made = folder / f"{stem}-{n}{suffix}"
    return made


def _rotate(folder: Path, made: Path, keep: int | None) -> list[Path]:
    """Remove all but the newest ``keep`` dated backups in ``folder``, never the one just ``made``; those removed.

    Only files named as ``backup`` names them count (a restore's ``tally-before-restore-*`` never does).
    """
    if keep is None:
        return []
    dated = []
    for path in folder.iterdir():
        if (found := DATED.fullmatch(path.name)) and found[3] == made.suffix and path.is_file() and path != made:
            dated.append(((found[1], int(found[2] or 1)), path))
    dated.sort()
    removed = [path for _, path in dated[: max(0, len(dated) - (keep - 1))]]
    for path in removed:
        path.unlink()
    return removed


def _sync(path: Path) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())
