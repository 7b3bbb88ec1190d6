"""The database: the one API the bot and the extensions call, on SQLite or PostgreSQL.

``await Database.open(target)`` opens a SQLite file (a path) or a PostgreSQL
database (a ``postgresql://`` URL) and checks, creates or upgrades its
schema; see ``storage/sqlite.py`` and ``storage/postgres.py``. The SQL sits by
concern in ``storage/`` (levels, audit, settings, rewards, coins, cases), written once for
both backends, and ``Database`` gathers it into one object.

The values it hands out and the errors it raises are in ``storage/records.py``
and are re-exported here.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from storage import postgres, sqlite
from storage.audit import AuditSQL
from storage.cases import CasesSQL
from storage.coins import CoinsSQL
from storage.imports import ImportSQL
from storage.levels import LevelsSQL, new_flush_id
from storage.records import (
    AuditEntry,
    CannotUndo,
    Case,
    ConstraintViolated,
    Daily,
    DatabaseBusy,
    DatabaseRefused,
    DatabaseUnavailable,
    InsufficientCoins,
    Movement,
    OldReason,
    SyncState,
    Unsaved,
    XpGain,
)
from storage.rewards import RewardsSQL
from storage.schema import SCHEMA_VERSION
from storage.settings import SettingsSQL

__all__ = [
    "SCHEMA_VERSION",
    "AuditEntry",
    "CannotUndo",
    "Case",
    "ConstraintViolated",
    "Daily",
    "Database",
    "DatabaseBusy",
    "DatabaseRefused",
    "DatabaseUnavailable",
    "InsufficientCoins",
    "Movement",
    "OldReason",
    "SyncState",
    "Unsaved",
    "XpGain",
]

log = logging.getLogger(__name__)

Store = sqlite.SQLiteStore | postgres.PostgresStore


class Database(LevelsSQL, AuditSQL, ImportSQL, SettingsSQL, RewardsSQL, CoinsSQL, CasesSQL):
    """Tally's storage. Build it with ``await Database.open(path_or_url)``."""

    def __init__(self, store: Store, unsaved_stem: Path) -> None:
        self._store = store
        self._unsaved_stem = unsaved_stem  # XP a shutdown could not write goes to <stem>.unsaved-*.json

    @classmethod
    async def open(
        cls,
        target: Path | str,
        *,
        exclusive: bool = False,
        unsaved_folder: Path | str = "data",
        schema_version: int = SCHEMA_VERSION,
        **options: Any,
    ) -> Database:
        """Open a SQLite file or, for a ``postgresql://`` URL, a PostgreSQL database.

        ``exclusive``: this is the running bot (SQLite refuses a second one;
        PostgreSQL lets shards share but tells tools a bot is running), and
        XP that an earlier shutdown kept in files is added now.
        ``unsaved_folder``: where a PostgreSQL bot keeps such files (a SQLite
        file keeps them beside itself). The other options go to the backend
        (``schema_path``, ``migrations``: tests check the upgrade machinery
        with schemas of their own; ``busy_timeout`` for SQLite).
        """
        if isinstance(target, str) and postgres.is_url(target):
            store = await postgres.PostgresStore.open(
                target, schema_version=schema_version, exclusive=exclusive, **options
            )
            stem = Path(unsaved_folder) / postgres.file_stem(target)
        else:
            store = await sqlite.SQLiteStore.open(target, schema_version=schema_version, exclusive=exclusive, **options)
            stem = store.path
        db = cls(store, stem)
        if exclusive:
            await db._add_unsaved()
        return db

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgres"``."""
        return self._store.dialect

    @property
    def description(self) -> str:
        """Which database this is, for the log (a PostgreSQL URL without its password)."""
        return self._store.description

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """One transaction, for tools and tests (the methods above use their own)."""
        async with self._store.transaction() as conn:
            yield conn

    async def wait_for_lock_at_most(self, seconds: float) -> None:
        """How long a write may wait from now on (shutdown shortens it)."""
        await self._store.wait_for_lock_at_most(seconds)

    async def close(self) -> None:
        await self._store.close()

    # -- XP a shutdown could not write ----------------------------------------------

    def unsaved_files(self) -> list[Path]:
        """Files of XP that shutdowns could not write, oldest first."""
        stem = self._unsaved_stem
        return sorted(stem.parent.glob(f"{stem.name}.unsaved-*.json"))

    def keep_unsaved(self, unsaved: list[Unsaved]) -> Path:
        """Write batches the database would not take to a new file; the next start adds them.

        A new file for every shutdown (never a merge with an earlier one, which
        might be unreadable), written whole and synced before it takes its name.
        Each batch keeps its flush ID: one whose write may have landed after all
        (a connection lost during COMMIT) then counts once.
        """
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"{now % 1:.6f}"[1:]
        path = self._unsaved_stem.with_name(f"{self._unsaved_stem.name}.unsaved-{stamp}-{os.getpid()}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with open(partial, "w", encoding="utf-8") as file:
            json.dump([[kept.flush_id, [list(gain) for gain in kept.gains]] for kept in unsaved], file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
        return path

    async def _add_unsaved(self) -> None:
        """Add the XP earlier shutdowns kept in files, each in one write, then remove the file.

        Never raises: a file that cannot be read or added is left in place and
        named in the log. Each file is locked while it is added, and skipped if
        it is gone by then, so two shard processes sharing a folder add it once.
        """
        for path in self.unsaved_files():
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                log.error("cannot read %s (%s); it is left as it is: fix or remove it", path, exc.strerror)
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # another process is adding it
                if not path.exists() or os.stat(path).st_ino != os.fstat(fd).st_ino:
                    continue  # added and removed by another process meanwhile
                try:
                    batches = _unsaved_batches(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, ValueError, TypeError) as exc:
                    log.error("cannot read %s (%s); it is left as it is: fix or remove it", path, exc)
                    continue
                try:
                    for kept in batches:  # a batch added before a crash is recognised by its flush ID
                        await self.add_xp(kept.gains, kept.flush_id)
                except Exception:
                    log.exception("could not add the XP kept in %s; it is kept for the next start", path)
                    continue
                path.unlink()
                members = sum(len(kept.gains) for kept in batches)
                log.info("added the XP of %d members that a shutdown kept in %s", members, path)
            finally:
                os.close(fd)


def _unsaved_batches(content: object) -> list[Unsaved]:
    """The batches in a file of unsaved XP; ValueError unless it is exactly what keep_unsaved writes.

    A file from before flush IDs (a bare list of gains) is one batch with a new ID.
    """
    if not isinstance(content, list):
        raise ValueError("not a list of batches")
    if content and all(isinstance(row, list) and len(row) == len(XpGain._fields) for row in content):
        return [Unsaved(new_flush_id(), _unsaved_gains(content))]
    batches = []
    for item in content:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], int) and item[0] > 0):
            raise ValueError("a batch is not a flush ID with its gains")
        batches.append(Unsaved(item[0], _unsaved_gains(item[1])))
    return batches


def _unsaved_gains(rows: object) -> list[XpGain]:
    """The gains of one batch; ValueError unless each is exactly a gain."""
    if not isinstance(rows, list):
        raise ValueError("not a list of gains")
    gains = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == len(XpGain._fields)):
            raise ValueError("a row is not a gain")
        gain = XpGain(*row)
        if not all(isinstance(value, int) and value >= 0 for value in (*gain[:3], *gain[4:])):
            raise ValueError("a gain holds something other than whole numbers")
        if not isinstance(gain.name, str):
            raise ValueError("a gain's name is not text")
        gains.append(gain)
    return gains
