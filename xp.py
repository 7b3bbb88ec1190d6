"""XP in memory: cooldowns, pending gains, and each guild's ranked board.

The message handler calls :meth:`XpTracker.award`, which only touches memory:
the cooldown check, the member's pending gain and the guild's board. A flusher
task writes every pending gain to the database in one transaction once per
``flush_seconds`` and once more at shutdown. A flush that fails keeps its
gains for the next try, and a shutdown never cuts a flush in half: it waits
for the running one (bounded) and keeps trying, so nothing is dropped.

Coins earned by a level-up travel with the XP that earned them: they are
queued with the member's pending gain and written in the same transaction,
so they are exactly as durable as that XP, also while the database is busy.

Each guild's board (``board.py``) holds every member's total XP (stored plus
pending) by user ID and in leaderboard order, so a rank or a leaderboard page
is a bisection instead of a COUNT over the table.

Memory is bounded by activity, not by history:
  * a cooldown is forgotten once it has ended (pruned at every flush tick),
    so cooldowns hold at most the members who earned XP in the last
    ``cooldown_seconds``;
  * pending gains are emptied by every successful flush, so they hold at most
    the members who earned XP since the last flush;
  * a guild idle for ``idle_seconds`` (and with nothing pending or cooling
    down) is dropped from memory and read again when next needed, so boards
    hold the members of guilds active in the last ``idle_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable, Iterator
from operator import itemgetter

from board import GuildBoard
from db import Database
from storage.levels import new_flush_id
from storage.records import AuditEntry, CannotUndo, DatabaseUnavailable, Standing, Unsaved, XpGain

log = logging.getLogger(__name__)

SETTLE_PIECE = 500  # board changes settled between two turns of the event loop (about a millisecond)

# One guild's detached share of a flush: guild ID, pending XP, names, level-up coins.
_Batch = tuple[int, dict[int, int], dict[int, str], dict[int, int]]
_first = itemgetter(0)


class _Guild:
    """Everything held in memory for one guild."""

    __slots__ = ("board", "loaded", "early", "early_base", "cooldowns", "pending", "coins", "names", "last_used")

    def __init__(self, now: float) -> None:
        self.board: GuildBoard | None = None  # None while it is being read
        self.loaded = asyncio.Event()
        # XP awarded while the board was being read, and each such member's
        # stored XP once it was read: enough to tell every early award its totals.
        self.early: dict[int, int] = {}
        self.early_base: dict[int, int] = {}
        # user -> when their cooldown ends, in expiry order (renewing re-inserts; a server that shortens
        # its cooldown only delays pruning of the older entries), so pruning stops at the first live entry.
        self.cooldowns: dict[int, float] = {}
        self.pending: dict[int, int] = {}  # user -> XP not yet written
        self.coins: dict[int, int] = {}  # user -> level-up coins not yet written
        self.names: dict[int, str] = {}  # user -> display name at their latest pending gain
        self.last_used = now

    def prune(self, now: float) -> int:
        ended = []
        for user_id, until in self.cooldowns.items():
            if until > now:
                break
            ended.append(user_id)
        for user_id in ended:
            del self.cooldowns[user_id]
        return len(ended)


class XpTracker:
    """Cooldowns, pending gains and guild boards for one bot process."""

    def __init__(
        self,
        db: Database,
        *,
        xp_per_message: int,
        cooldown_seconds: float,
        flush_seconds: float,
        idle_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.xp_per_message = xp_per_message
        self.cooldown_seconds = cooldown_seconds
        self.flush_seconds = flush_seconds
        self.idle_seconds = max(idle_seconds, cooldown_seconds)
        self._clock = clock
        self._guilds: dict[int, _Guild] = {}
        self._loads: set[asyncio.Task[None]] = set()
        self._flush_lock = asyncio.Lock()
        self._flushed = asyncio.Condition()
        self.flushes = 0  # successful flushes that wrote something
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # set to flush before the timer (level-up coins)
        # Guilds whose gains a running flush has taken out of memory: never pruned meanwhile,
        # and a command that reads coins there waits for that flush.
        # A batch taken out of the guilds for a write whose outcome is not yet known to be
        # success: (its flush ID, its batch). Sent again as it is, with the same ID, until
        # written; the database adds a flush ID once, so a retry never counts twice.
        # The batch stays as detached (per guild dicts) until the database's worker thread turns it
        # into rows: 10,000 members' rows built and sorted on the event loop would stall it ~15 ms.
        self._held: tuple[int, list[_Batch]] | None = None
        self._failing = False

    # -- the message path ------------------------------------------------------

    def _guild(self, guild_id: int) -> _Guild:
        """The guild's state; the first call starts reading its board."""
        guild = self._guilds.get(guild_id)
        if guild is None:
            guild = self._guilds[guild_id] = _Guild(self._clock())
            task = asyncio.create_task(self._load(guild_id, guild), name=f"tally-board-{guild_id}")
            self._loads.add(task)
            task.add_done_callback(self._loads.discard)
        return guild

    async def _load(self, guild_id: int, guild: _Guild) -> None:
        """Read the guild's board, retrying while the database fails."""
        delay = 0.5
        while True:
            try:
                columns = await self.db.guild_columns(guild_id)
                break
            except DatabaseUnavailable as exc:  # a server down or restarting: expected, no traceback
                log.warning("could not read XP of guild %s (%s); retrying in %s s", guild_id, exc, delay)
                await asyncio.sleep(delay)  # a retry timer
                delay = min(delay * 2, 30.0)
            except Exception:
                log.exception("could not read XP of guild %s; retrying in %s s", guild_id, delay)
                await asyncio.sleep(delay)  # a retry timer
                delay = min(delay * 2, 30.0)
        board = await _board_from(columns)
        for user_id, amount in guild.early.items():
            guild.early_base[user_id], _ = board.add(user_id, amount)
        guild.early.clear()
        guild.board = board
        guild.loaded.set()

    async def board(self, guild_id: int, timeout: float = 30.0) -> GuildBoard:
        """The guild's board: every member's XP including what is still pending."""
        guild = self._guild(guild_id)
        guild.last_used = self._clock()
        if guild.board is None:
            await asyncio.wait_for(guild.loaded.wait(), timeout)
        return guild.board

    async def standing(self, guild_id: int, user_id: int) -> Standing:
        """A member's total XP (stored and pending), rank and how many members are ranked.

        From the guild's board; while a big board is still being read after a
        start (a few seconds for a million members), counted in the database
        instead, so the first ``!level`` does not wait for it.
        """
        guild = self._guild(guild_id)
        guild.last_used = self._clock()
        if guild.board is None:
            async with self._flush_lock:  # no flush moves XP from memory to the database meanwhile
                if guild.board is None:
                    held = self._held[1] if self._held else []
                    unsaved = guild.pending.get(user_id, 0) + sum(
                        pending.get(user_id, 0) for held_id, pending, _, _ in held if held_id == guild_id
                    )
                    return await self.db.standing(guild_id, user_id, unsaved)
        board = guild.board
        return Standing(board.xp_of(user_id), board.rank_of(user_id), len(board))

    async def award(
        self, guild_id: int, user_id: int, name: str, amount: int | None = None, cooldown: float | None = None
    ) -> tuple[int, int] | None:
        """Give a chatting member XP unless they are on cooldown.

        ``amount`` and ``cooldown`` are the server's (its settings); without
        them, the tracker's defaults.

        Everything is recorded at once, in memory and in message order; only
        the totals returned (XP before and after, or None on cooldown) wait
        for the guild's board if it is still being read after a start.
        """
        guild = self._guilds.get(guild_id) or self._guild(guild_id)
        amount = self._record(guild, user_id, name, amount, cooldown)
        if amount is None:
            return None
        if guild.board is not None:
            return guild.board.add(user_id, amount)
        earlier = guild.early.get(user_id, 0)
        guild.early[user_id] = earlier + amount
        await guild.loaded.wait()
        before = guild.early_base[user_id] + earlier
        return before, before + amount

    def award_now(
        self, guild_id: int, user_id: int, name: str, amount: int, cooldown: float
    ) -> tuple[int, int] | None | bool:
        """award() without awaiting, for the gateway's parser: False (nothing recorded) while the guild's
        board is not in memory, when award() would have to wait."""
        guild = self._guilds.get(guild_id)
        if guild is None or guild.board is None:
            return False
        amount = self._record(guild, user_id, name, amount, cooldown)
        return None if amount is None else guild.board.add(user_id, amount)

    def _record(self, guild: _Guild, user_id: int, name: str, amount: int | None, cooldown: float | None) -> int | None:
        """The cooldown and the pending gain of one message; the XP it earned, or None on cooldown."""
        now = self._clock()
        guild.last_used = now
        cooldowns = guild.cooldowns
        if cooldowns.get(user_id, 0.0) > now:
            return None
        cooldown = self.cooldown_seconds if cooldown is None else cooldown
        if cooldown:
            cooldowns.pop(user_id, None)
            cooldowns[user_id] = now + cooldown
        amount = self.xp_per_message if amount is None else amount
        guild.pending[user_id] = guild.pending.get(user_id, 0) + amount
        guild.names[user_id] = name
        return amount

    def add_coins(self, guild_id: int, user_id: int, name: str, amount: int) -> None:
        """Queue level-up coins with the member's pending XP: written in the same flush.

        Wakes the flusher, so the balance shows them within moments.
        """
        guild = self._guild(guild_id)
        guild.coins[user_id] = guild.coins.get(user_id, 0) + amount
        guild.names[user_id] = name
        self._wake.set()

    async def settle_coins(self, guild_id: int) -> None:
        """Write the guild's queued level-up coins now, before a command reads or moves coins.

        A no-op unless the guild has coins queued or a flush under way. If the
        database fails, the coins stay queued and the command reads what is stored.
        """
        guild = self._guilds.get(guild_id)
        if guild_id in self._in_flight or (guild is not None and guild.coins):
            with contextlib.suppress(Exception):  # logged by flush()
                await self.flush()

    def pending_name(self, guild_id: int, user_id: int) -> str | None:
        guild = self._guilds.get(guild_id)
        return guild.names.get(user_id) if guild else None

    @property
    def pending_count(self) -> int:
        """Members with XP or level-up coins not yet written."""
        held = _members(self._held[1]) if self._held else 0
        return held + _members((0, guild.pending, {}, guild.coins) for guild in self._guilds.values())

    @property
    def _in_flight(self) -> set[int]:
        """Guilds with gains in a held batch: never pruned, their coin commands wait for it."""
        return {guild_id for guild_id, *_ in self._held[1]} if self._held else set()

    @property
    def cooldown_count(self) -> int:
        return sum(len(guild.cooldowns) for guild in self._guilds.values())

    @property
    def guilds_in_memory(self) -> int:
        return len(self._guilds)

    def prune(self) -> int:
        """Forget ended cooldowns and idle guilds; returns how many cooldowns ended."""
        now = self._clock()
        ended = 0
        for guild_id, guild in list(self._guilds.items()):
            ended += guild.prune(now)
            idle = now - guild.last_used >= self.idle_seconds
            busy = guild.pending or guild.coins or guild.cooldowns or guild_id in self._in_flight
            if idle and guild.board is not None and not busy:
                del self._guilds[guild_id]
        return ended

    # -- flushing ----------------------------------------------------------------

    async def change(
        self, guild_id: int, write: Callable[[], Awaitable[list[AuditEntry]]]
    ) -> tuple[list[AuditEntry], dict[int, tuple[int, int]]]:
        """Apply an XP change that is not chat (an admin's, an undo) to the database and the board.

        Pending chat XP is written first and no flush runs meanwhile, so
        ``write`` (a Database.change_xp or undo_xp) reads every member's true
        XP; each entry's difference then moves the board, which keeps any XP
        earned during the write. Returns what ``write`` returned, and each
        changed member's total XP (stored and pending) before and after, by user ID.
        """
        board = await self.board(guild_id)
        async with self._flush_lock:
            await self._flush()
            task = asyncio.ensure_future(write())
            try:  # once written, the board must follow, whatever cancels the caller meanwhile
                await asyncio.shield(task)
            except asyncio.CancelledError:
                while not task.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait({task})
                if not task.cancelled() and task.exception() is None:
                    _move(board, task.result())
                raise
            except CannotUndo:
                raise  # refused before anything was written
            except Exception:
                # The outcome may be unknown (a connection lost during COMMIT): read the board again.
                with contextlib.suppress(Exception):
                    await self._reread(guild_id)
                raise
            return task.result(), _move(board, task.result())

    async def _reread(self, guild_id: int) -> None:
        """Read a guild's board again from the database, plus what is pending (the flush lock is held)."""
        columns = await self.db.guild_columns(guild_id)
        guild = self._guilds.get(guild_id)
        if guild is None or guild.board is None:
            return
        board = await _board_from(columns)
        for user_id, amount in guild.pending.items():  # no flush ran meanwhile: pending is not in the rows
            board.add(user_id, amount)
        guild.board = board

    async def flush(self) -> int:
        """Write every pending gain, one batch a round trip; returns how many members.

        A batch keeps a flush ID until it is written. On failure it is held
        as it is and sent again first by the next flush, with the same ID: if
        the failed try had in fact committed (a connection lost during COMMIT,
        a timeout), the database recognises the ID and adds nothing twice.
        The error is logged once until a flush succeeds.
        """
        async with self._flush_lock:
            return await self._flush()

    async def _flush(self) -> int:
        """flush() with its lock held."""
        written: set[tuple[int, int]] = set()
        detached = False  # one new batch a flush (after a held one): under load it never runs back to back
        while True:
            if self._held is None:
                batch = [] if detached else self._detach()
                detached = True
                if not batch:
                    break
                self._held = (new_flush_id(), batch)
            flush_id, batch = self._held
            members = _members(batch)
            log.debug("saving XP of %d members", members)
            try:
                cancelled = await _to_the_end(self.db.add_xp(_gains(batch), flush_id))
            except BaseException as exc:  # held as it is: sent again, it cannot count twice
                if not self._failing and isinstance(exc, DatabaseUnavailable):  # a server down: no traceback
                    log.warning("could not save XP for %d members (%s); keeping it and retrying", members, exc)
                elif not self._failing:
                    log.exception("could not save XP for %d members; keeping it and retrying", members)
                self._failing = True
                raise
            self._held = None
            for guild_id, pending, _, coins in batch:
                written.update(zip(itertools.repeat(guild_id), pending.keys() | coins.keys()))
            if self._failing:
                log.info("saving XP works again")
                self._failing = False
            log.debug("saved XP of %d members", members)
            async with self._flushed:
                self.flushes += 1
                self._flushed.notify_all()
            if cancelled:
                raise asyncio.CancelledError  # written and counted; now the caller's cancellation
        return len(written)

    def _detach(self) -> list[_Batch]:
        """Take every guild's pending gains out of memory, for one write."""
        batch = []
        for guild_id, guild in self._guilds.items():
            if guild.pending or guild.coins:
                batch.append((guild_id, guild.pending, guild.names, guild.coins))
                guild.pending, guild.names, guild.coins = {}, {}, {}
        return batch

    async def wait_for_flushes(self, count: int) -> None:
        """Wait until ``count`` flushes have written something (for tests and tools)."""
        async with self._flushed:
            await self._flushed.wait_for(lambda: self.flushes >= count)

    def start(self) -> None:
        """Start the background flusher."""
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever(), name="tally-xp-flusher")

    async def _flush_forever(self) -> None:
        while True:
            # a timer, or earlier when level-up coins are waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            self._wake.clear()
            with contextlib.suppress(Exception):  # logged by flush(); the gains wait for the next tick
                # Shielded: stopping the flusher never cuts a flush in half (the statement
                # would still run in the database's thread while its batch was put back).
                await asyncio.shield(self.flush())
            self.prune()
            await self._settle_boards()

    async def _settle_boards(self) -> None:
        """Settle what every board holds written behind, a piece at a time, the event loop running between."""
        for guild in list(self._guilds.values()):
            while guild.board is not None and guild.board.unsettled:
                guild.board.settle(SETTLE_PIECE)
                await asyncio.sleep(0)  # let messages in after each piece: fifty guilds' worth at once stalled 50 ms

    async def stop(self, within: float = 30.0) -> list[Unsaved]:
        """Stop the flusher and write what is pending; returns the gains that could not be written.

        Waits for a flush that is running, then keeps trying while the database
        is busy or failing, for ``within`` seconds. Past that it gives up, says
        loudly per guild what it could not write, and hands those gains back
        with their flush IDs (an empty list: everything was saved).
        """
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        for task in list(self._loads):  # every award is already in the pending gains
            task.cancel()
        await asyncio.gather(*self._loads, return_exceptions=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        delay = 0.1
        while True:
            try:
                # no single try may wait on a lock past the deadline (5 s otherwise)
                await self.db.wait_for_lock_at_most(min(5.0, max(0.05, deadline - loop.time())))
                await self.flush()  # waits for the flush in progress first: they share one lock
                return []
            except Exception:
                pass  # flush() logged it
            if loop.time() + delay >= deadline:
                break
            log.warning(
                "still trying to save the XP of %d members before shutting down (giving up in %.0f s)",
                self.pending_count,
                deadline - loop.time(),
            )
            await asyncio.sleep(delay)  # a retry timer
            delay = min(delay * 2, 2.0)
        unsaved = [Unsaved(self._held[0], list(_gains(self._held[1])))] if self._held else []
        if batch := self._detach():
            unsaved.append(Unsaved(new_flush_id(), list(_gains(batch))))
        self._held = None
        per_guild: dict[int, list[XpGain]] = {}
        for kept in unsaved:
            for gain in kept.gains:
                per_guild.setdefault(gain.guild_id, []).append(gain)
        for guild_id, gains in per_guild.items():
            log.error(
                "NOT SAVED: %d XP of %d members in guild %s (and %d level-up coins)",
                sum(gain.xp for gain in gains),
                len({gain.user_id for gain in gains}),
                guild_id,
                sum(gain.coins for gain in gains),
            )
        log.error(
            "giving up after %.0f s: the XP of %d members could not be written to the database",
            within,
            sum(len(kept.gains) for kept in unsaved),
        )
        return unsaved


async def _board_from(columns: tuple[array, array]) -> GuildBoard:
    """A board of ``columns`` (as ``Database.guild_columns`` reads them); a big one built off the event loop."""
    if len(columns[0]) > 10_000:
        return await asyncio.to_thread(GuildBoard.from_columns, *columns)
    return GuildBoard.from_columns(*columns)


def _move(board: GuildBoard, entries: list[AuditEntry]) -> dict[int, tuple[int, int]]:
    """Move each changed member on the board by the change's difference; their totals before and after."""
    return {entry.user_id: board.add(entry.user_id, entry.xp_after - entry.xp_before) for entry in entries}


async def _to_the_end(write: Awaitable[None]) -> bool:
    """Await a database write to its end, even if the caller is cancelled meanwhile.

    The statements run in the database's thread whatever happens to the
    coroutine, so only the write's own outcome may decide whether its batch
    goes back: a cancellation while COMMIT is under way must not put back
    gains that were written (they would be counted twice). Raises the
    write's own error; returns whether the caller was cancelled meanwhile,
    for the caller to pass on once its bookkeeping is done.
    """
    task = asyncio.ensure_future(write)
    try:
        await asyncio.shield(task)
        return False
    except asyncio.CancelledError:
        if not task.done():
            await asyncio.wait({task})
        task.result()  # the write's own error, if it failed
        return True


def _members(batch: Iterable[_Batch]) -> int:
    """How many members have gains in ``batch``."""
    return sum(len(pending.keys() | coins.keys()) for _, pending, _, coins in batch)


def _gains(batch: list[_Batch]) -> Iterator[XpGain]:
    """The detached gains as rows to write: XP and level-up coins per member, in key order (read in the
    database's worker thread: nothing changes a batch once it is detached). Sorted here, by plain user
    IDs a guild at a time, the rows cost the database layer's sort one pass: a sort of 15,000 rows as
    tuples held the GIL for about 12 ms."""
    seen_at = int(time.time())
    for guild_id, pending, names, coins in sorted(batch, key=_first):
        for user_id in sorted(pending.keys() | coins.keys()):
            yield XpGain(guild_id, user_id, pending.get(user_id, 0), names[user_id], seen_at, coins.get(user_id, 0))
