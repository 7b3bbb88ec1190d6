"""XP in memory: cooldowns, pending gains, and each guild's ranked board.

The message listener calls :meth:`XpTracker.award`, which only touches memory:
the cooldown check, the member's pending gain and the guild's board. A flusher
task writes every pending gain to the database in one transaction once per
``flush_seconds`` and once more at shutdown. A flush that fails keeps its
gains for the next try, so nothing is dropped.

Each guild's board holds every member's total XP (stored plus pending) in a
``SortedList`` keyed by leaderboard order, so a rank or a leaderboard page is
an O(log n) lookup instead of a COUNT over the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sortedcontainers import SortedList

from db import Database, XpGain

log = logging.getLogger(__name__)

_USER_BITS = 64  # snowflakes fit in 64 bits
_USER_MASK = (1 << _USER_BITS) - 1


def _order_key(xp: int, user_id: int) -> int:
    """One int that sorts by XP descending, then user ID ascending (the tie rule)."""
    return (-xp << _USER_BITS) + user_id


def _from_key(key: int) -> tuple[int, int]:
    return key & _USER_MASK, -(key >> _USER_BITS)


class GuildBoard:
    """Every member's XP in one guild, kept in leaderboard order."""

    __slots__ = ("_xp", "_order")

    def __init__(self, rows: Iterable[tuple[int, int]] = ()) -> None:
        self._xp: dict[int, int] = dict(rows)
        self._order = SortedList(_order_key(xp, user_id) for user_id, xp in self._xp.items())

    def __len__(self) -> int:
        return len(self._xp)

    def xp_of(self, user_id: int) -> int:
        return self._xp.get(user_id, 0)

    def add(self, user_id: int, amount: int) -> tuple[int, int]:
        """Add ``amount`` XP; return the member's XP before and after."""
        before = self._xp.get(user_id)
        if before is not None:
            self._order.remove(_order_key(before, user_id))
        after = (before or 0) + amount
        self._xp[user_id] = after
        self._order.add(_order_key(after, user_id))
        return before or 0, after

    def rank_of(self, user_id: int) -> int | None:
        """1-based rank, or None for a member without XP."""
        xp = self._xp.get(user_id)
        if xp is None:
            return None
        return self._order.index(_order_key(xp, user_id)) + 1

    def page(self, start: int, count: int) -> list[tuple[int, int]]:
        """``(user_id, xp)`` for ranks ``start + 1`` to ``start + count``."""
        return [_from_key(key) for key in self._order.islice(start, start + count)]


@dataclass(slots=True)
class _Pending:
    xp: int
    name: str
    seen_at: int


class XpTracker:
    """Cooldowns, pending gains and guild boards for one bot process."""

    def __init__(
        self,
        db: Database,
        *,
        xp_per_message: int,
        cooldown_seconds: float,
        flush_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.xp_per_message = xp_per_message
        self.cooldown_seconds = cooldown_seconds
        self.flush_seconds = flush_seconds
        self._clock = clock
        # (guild, user) -> when their cooldown ends. Kept in expiry order (an
        # entry is re-inserted when renewed), so pruning stops at the first
        # live entry.
        self._cooldowns: dict[tuple[int, int], float] = {}
        self._pending: dict[tuple[int, int], _Pending] = {}
        self._boards: dict[int, GuildBoard] = {}
        self._loading: dict[int, asyncio.Lock] = {}
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._failing = False
        # Awards waiting for a board to load: stop() lets them land before the last flush.
        self._loads_in_flight = 0
        self._no_loads = asyncio.Event()
        self._no_loads.set()

    # -- the message path ------------------------------------------------------

    async def board(self, guild_id: int) -> GuildBoard:
        """The guild's board, read from the database the first time it is needed."""
        board = self._boards.get(guild_id)
        if board is None:
            async with self._loading.setdefault(guild_id, asyncio.Lock()):
                board = self._boards.get(guild_id)
                if board is None:
                    board = GuildBoard(await self.db.guild_xp(guild_id))
                    self._boards[guild_id] = board
            self._loading.pop(guild_id, None)
        return board

    async def award(self, guild_id: int, user_id: int, name: str) -> tuple[int, int] | None:
        """Give a chatting member XP unless they are on cooldown.

        Returns the member's total XP before and after, or None on cooldown.
        """
        key = (guild_id, user_id)
        now = self._clock()
        if self._cooldowns.get(key, 0.0) > now:
            return None
        if self.cooldown_seconds:  # before any await, so a burst cannot slip through
            self._cooldowns.pop(key, None)
            self._cooldowns[key] = now + self.cooldown_seconds
        board = self._boards.get(guild_id)
        if board is None:  # the guild's first message since start-up: read its board
            self._loads_in_flight += 1
            self._no_loads.clear()
            try:
                board = await self.board(guild_id)
            finally:
                self._loads_in_flight -= 1
                if not self._loads_in_flight:
                    self._no_loads.set()
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = _Pending(self.xp_per_message, name, int(time.time()))
        else:
            pending.xp += self.xp_per_message
            pending.name = name
        return board.add(user_id, self.xp_per_message)

    def pending_name(self, guild_id: int, user_id: int) -> str | None:
        pending = self._pending.get((guild_id, user_id))
        return pending.name if pending else None

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def prune_cooldowns(self) -> int:
        """Forget cooldowns that have ended; returns how many were dropped."""
        now = self._clock()
        ended = []
        for key, until in self._cooldowns.items():
            if until > now:
                break
            ended.append(key)
        for key in ended:
            del self._cooldowns[key]
        return len(ended)

    # -- flushing ----------------------------------------------------------------

    async def flush(self) -> int:
        """Write every pending gain in one transaction; returns how many members.

        On failure the gains go back into the pending map (merged with any that
        arrived meanwhile) and the error is logged once until a flush succeeds.
        """
        async with self._flush_lock:
            if not self._pending:
                return 0
            batch, self._pending = self._pending, {}
            gains = [XpGain(g, u, p.xp, p.name, p.seen_at) for (g, u), p in batch.items()]
            try:
                await self.db.add_xp(gains)
            except Exception:
                self._restore(batch)
                if not self._failing:
                    log.exception("could not save XP for %d members; keeping it and retrying", len(batch))
                self._failing = True
                raise
            if self._failing:
                log.info("saving XP works again")
                self._failing = False
            return len(gains)

    def _restore(self, batch: dict[tuple[int, int], _Pending]) -> None:
        for key, old in batch.items():
            newer = self._pending.get(key)
            if newer is None:
                self._pending[key] = old
            else:  # keep the newer name, the older first-seen time
                newer.xp += old.xp
                newer.seen_at = old.seen_at

    def start(self) -> None:
        """Start the background flusher."""
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever(), name="tally-xp-flusher")

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)  # a timer, not synchronisation
            self.prune_cooldowns()
            with contextlib.suppress(Exception):  # logged by flush(); the gains wait for the next tick
                await self.flush()

    async def stop(self, attempts: int = 5) -> None:
        """Stop the flusher and write what is pending, retrying a failing database."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        try:
            await asyncio.wait_for(self._no_loads.wait(), timeout=10)
        except TimeoutError:
            log.warning("stopped waiting for %d boards to load", self._loads_in_flight)
        for attempt in range(1, attempts + 1):
            try:
                await self.flush()
                return
            except Exception:
                if attempt == attempts:
                    log.error("giving up: XP of %d members could not be saved at shutdown", len(self._pending))
                    return
                await asyncio.sleep(0.2 * attempt)
