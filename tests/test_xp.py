"""The XP engine: cooldowns, write-behind flushes, failures, and ranks."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

import board as board_module
from db import Database, DatabaseBusy, XpGain
from storage.records import Standing
from xp import GuildBoard, XpTracker

GUILD = 222222222222222222


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracker(db: Database, clock: Clock | None = None, cooldown: float = 60, xp: int = 5) -> XpTracker:
    return XpTracker(db, xp_per_message=xp, cooldown_seconds=cooldown, flush_seconds=1, clock=clock or Clock())


async def test_award_adds_xp_and_reports_before_and_after(db):
    t = tracker(db, cooldown=0)
    assert await t.award(GUILD, 1, "alice") == (0, 5)
    assert await t.award(GUILD, 1, "alice") == (5, 10)


async def test_cooldown_blocks_xp_until_it_ends_per_guild(db):
    clock = Clock()
    t = tracker(db, clock)
    assert await t.award(GUILD, 1, "alice") == (0, 5)
    clock.now += 59.9
    assert await t.award(GUILD, 1, "alice") is None
    assert await t.award(GUILD + 1, 1, "alice") == (0, 5)  # another guild has its own cooldown
    clock.now += 0.1
    assert await t.award(GUILD, 1, "alice") == (5, 10)


async def test_ended_cooldowns_are_pruned_and_live_ones_kept(db):
    clock = Clock()
    t = tracker(db, clock)
    for user in range(100):
        await t.award(GUILD, user, "m")
    clock.now += 30
    for user in range(100, 150):
        await t.award(GUILD, user, "m")
    clock.now += 31  # the first 100 have ended, the last 50 have not
    assert t.prune() == 100
    assert t.cooldown_count == 50
    assert await t.award(GUILD, 149, "m") is None


async def test_flush_writes_all_pending_xp_in_one_go_and_empties_the_queue(db):
    t = tracker(db, cooldown=0)
    for _ in range(3):
        await t.award(GUILD, 1, "alice")
    await t.award(GUILD, 2, "bob")
    assert await db.member_xp(GUILD, 1) == 0  # nothing written yet: write-behind
    assert await t.flush() == 2
    assert t.pending_count == 0
    assert await db.member_xp(GUILD, 1) == 15
    assert await db.member_xp(GUILD, 2) == 5


async def test_a_failed_flush_keeps_the_xp_logs_once_and_a_later_flush_saves_it(tmp_path, caplog):
    path = tmp_path / "tally.db"
    db = await Database.open(path, busy_timeout=0.05)
    t = tracker(db, cooldown=0)
    await t.award(GUILD, 1, "alice")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: "database is locked"
    with caplog.at_level(logging.WARNING, logger="xp"):
        for _ in range(3):
            with pytest.raises(DatabaseBusy):
                await t.flush()
            await t.award(GUILD, 1, "alice")  # more XP arrives while the database is stuck
    assert len([r for r in caplog.records if "could not save XP" in r.getMessage()]) == 1
    blocker.execute("ROLLBACK")
    blocker.close()
    assert await t.flush() == 1
    assert await db.member_xp(GUILD, 1) == 20
    await db.close()


async def test_stop_flushes_what_is_pending(db):
    t = tracker(db, cooldown=0)
    t.start()
    await t.award(GUILD, 1, "alice")
    await t.stop()
    assert await db.member_xp(GUILD, 1) == 5


async def test_board_loads_stored_xp_once_and_adds_pending_on_top(db):
    from db import XpGain

    await db.add_xp([XpGain(GUILD, 1, 100, "alice", 0)])
    t = tracker(db, cooldown=0)
    assert await t.award(GUILD, 1, "alice") == (100, 105)
    board = await t.board(GUILD)
    assert board.xp_of(1) == 105


def test_board_ranks_by_xp_then_lower_user_id():
    board = GuildBoard([(30, 50), (10, 50), (20, 90)])
    assert [board.rank_of(u) for u in (20, 10, 30)] == [1, 2, 3]
    assert board.page(0, 10) == [(20, 90), (10, 50), (30, 50)]
    assert board.rank_of(99) is None


def test_board_moves_a_member_when_their_xp_changes():
    board = GuildBoard([(1, 10), (2, 20), (3, 30)])
    assert board.add(1, 25) == (10, 35)
    assert board.page(0, 3) == [(1, 35), (3, 30), (2, 20)]
    assert board.add(4, 5) == (0, 5)
    assert len(board) == 4
    assert board.page(3, 10) == [(4, 5)]


def test_board_keys_handle_the_largest_snowflakes_and_big_xp():
    big_user, small_user = 2**63 - 1, 1
    board = GuildBoard([(big_user, 10**15), (small_user, 10**15)])
    assert board.page(0, 2) == [(small_user, 10**15), (big_user, 10**15)]


async def test_a_burst_before_the_board_is_loaded_still_earns_xp_once(db):
    import asyncio

    t = tracker(db)
    results = await asyncio.gather(*(t.award(GUILD, 1, "alice") for _ in range(5)))
    assert results.count(None) == 4 and (0, 5) in results
    assert (await t.board(GUILD)).xp_of(1) == 5


async def test_awards_while_the_board_loads_keep_message_order_and_their_totals(db):
    import asyncio

    from db import XpGain

    await db.add_xp([XpGain(GUILD, 1, 100, "alice", 0)])
    t = tracker(db, cooldown=0)
    first = asyncio.ensure_future(t.award(GUILD, 1, "alice"))
    second = asyncio.ensure_future(t.award(GUILD, 1, "alice"))
    board = await t.board(GUILD)  # asked after both messages: it must include both
    assert board.xp_of(1) == 110
    assert await first == (100, 105)
    assert await second == (105, 110)


async def test_stop_saves_an_award_whose_board_is_still_loading(db):
    import asyncio

    t = tracker(db, cooldown=0)
    t.start()
    award = asyncio.ensure_future(t.award(GUILD, 1, "alice"))
    await t.stop()
    assert await db.member_xp(GUILD, 1) == 5
    award.cancel()


async def test_the_flusher_writes_pending_xp_on_its_own_within_the_interval(db):
    import asyncio

    t = XpTracker(db, xp_per_message=5, cooldown_seconds=0, flush_seconds=0.05)
    t.start()
    await t.award(GUILD, 1, "alice")
    await asyncio.wait_for(t.wait_for_flushes(1), timeout=5)
    assert await db.member_xp(GUILD, 1) == 5
    assert t.pending_count == 0
    await t.stop()


async def test_flushes_add_rather_than_overwrite_so_two_writers_both_count(storage):
    first, second = await storage.open(), await storage.open()
    a = XpTracker(first, xp_per_message=5, cooldown_seconds=0, flush_seconds=1)
    b = XpTracker(second, xp_per_message=7, cooldown_seconds=0, flush_seconds=1)
    await a.award(GUILD, 1, "alice")
    await b.award(GUILD, 1, "alice")
    await a.flush()
    await b.flush()
    assert await first.member_xp(GUILD, 1) == 12
    await first.close()
    await second.close()


async def test_memory_is_bounded_idle_guilds_and_ended_cooldowns_are_dropped(db):
    clock = Clock()
    t = XpTracker(db, xp_per_message=5, cooldown_seconds=60, flush_seconds=1, idle_seconds=600, clock=clock)
    for guild in range(20):
        for user in range(50):
            await t.award(GUILD + guild, user, "m")
    assert (t.guilds_in_memory, t.cooldown_count, t.pending_count) == (20, 1000, 1000)
    await t.flush()
    assert t.pending_count == 0  # every flush empties the pending gains
    clock.now += 61
    assert t.prune() == 1000  # every cooldown has ended
    assert t.guilds_in_memory == 20  # but the guilds were used recently
    await t.award(GUILD, 1, "m")  # one guild stays busy
    clock.now += 599  # the others have now been idle for 660 s
    await t.flush()
    t.prune()
    assert t.guilds_in_memory == 1
    # a dropped guild is read back from the database, complete
    assert (await t.board(GUILD + 7)).xp_of(3) == 5
    assert len(await t.board(GUILD + 7)) == 50


async def test_a_guild_with_pending_xp_or_live_cooldowns_is_never_dropped(db):
    clock = Clock()
    t = XpTracker(db, xp_per_message=5, cooldown_seconds=5000, flush_seconds=1, idle_seconds=600, clock=clock)
    await t.award(GUILD, 1, "m")
    clock.now += 1000  # idle for longer than idle_seconds, but the cooldown still runs
    t.prune()
    assert t.guilds_in_memory == 1
    assert await t.award(GUILD, 1, "m") is None


@pytest.mark.parametrize("chunk", [3, 2048])
def test_board_agrees_with_a_plain_sort_through_splits_removals_and_reads_between_changes(monkeypatch, chunk):
    import random

    monkeypatch.setattr(board_module, "CHUNK", chunk)  # 3: chunks split and empty all the time
    rng = random.Random(11)
    start = {user: rng.randrange(1, 60) for user in range(1, 200, 2)}
    board = GuildBoard(start.items())
    xp = dict(start)
    for step in range(4000):
        user = rng.randrange(1, 260)
        amount = rng.choice([5, 5, 10, -xp.get(user, 0), -3, 2**40])  # gains, a reset, a take, a big give
        assert board.add(user, amount) == (xp.get(user, 0), xp.get(user, 0) + amount)
        xp[user] = xp.get(user, 0) + amount
        if step % 97 == 0:  # reads settle what was written behind, in the middle of the changes
            expected = sorted(((u, x) for u, x in xp.items() if x), key=lambda item: (-item[1], item[0]))
            assert len(board) == len(expected)
            assert board.page(0, len(expected) + 5) == expected
            probe = rng.choice(expected)[0]
            assert board.rank_of(probe) == expected.index((probe, xp[probe])) + 1
            assert board.page(7, 9) == expected[7:16]
    assert [board.xp_of(user) for user in range(262)] == [xp.get(user, 0) for user in range(262)]
    assert board.rank_of(261) is None


async def test_a_standing_counted_in_the_database_agrees_with_the_board(db):
    """While a guild's board is not in memory, a standing is counted in the database, with the member's
    own unsaved XP: the same XP, rank (ties to the lower user ID) and members ranked as a board's."""
    stored = {1: 50, 2: 50, 3: 10, 4: 90, 5: 0}  # 5 was reset: not ranked
    await db.add_xp([XpGain(GUILD, user, xp, f"m{user}", 0) for user, xp in stored.items()])
    unsaved = {3: 40, 6: 20}  # 3 reaches 50, tied with 1 and 2; 6 has no row yet
    for user in [1, 2, 3, 4, 5, 6, 7]:
        own = unsaved.get(user, 0)
        board = GuildBoard({**stored, user: stored.get(user, 0) + own}.items())
        expected = (board.xp_of(user), board.rank_of(user), len(board))
        assert await db.standing(GUILD, user, own) == expected
    assert await db.standing(GUILD, 3, 40) == (50, 4, 4)
    assert await db.standing(GUILD, 6, 20) == (20, 4, 5)
    assert await db.standing(GUILD, 5, 0) == (0, None, 4)


async def test_the_first_level_after_a_start_does_not_wait_for_the_board_and_counts_unsaved_xp(db):
    await db.add_xp([XpGain(GUILD, 1, 50, "m1", 0), XpGain(GUILD, 2, 30, "m2", 0)])
    t = tracker(db, cooldown=0)
    # A chatting member's XP is recorded at once; its totals wait for the board, read from here on.
    earned = asyncio.ensure_future(t.award(GUILD, 2, "m2", 25))

    async def level() -> tuple[bool, Standing]:
        loading = t._guilds[GUILD].board is None  # (tasks start in order: the award's has run, the read's not)
        return loading, await t.standing(GUILD, 2)

    loading, standing = await asyncio.ensure_future(level())
    assert loading
    assert standing == (55, 1, 2)
    assert await asyncio.wait_for(earned, 10) == (30, 55)
    assert await t.standing(GUILD, 2) == standing  # and the board, now read, agrees


@pytest.mark.parametrize(("chunk", "sort_piece", "xp_groups"), [(3, 7, 2), (2048, 8192, 256)])
@pytest.mark.parametrize("distinct", ["few", "many"])
def test_a_board_built_from_columns_in_user_id_order_ranks_as_a_plain_sort_does(
    monkeypatch, chunk, sort_piece, xp_groups, distinct
):
    import random
    from array import array

    monkeypatch.setattr(board_module, "CHUNK", chunk)
    monkeypatch.setattr(board_module, "SORT_PIECE", sort_piece)  # and the pieces repeated values are appended in
    monkeypatch.setattr(board_module, "XP_GROUPS", xp_groups)
    rng = random.Random(5)
    values = [5, 5, 10, 15, 400, 10**12, -3] if distinct == "few" else range(-(10**6), 10**9)
    rows = sorted((user, rng.choice(values)) for user in rng.sample(range(1, 10**6), 3000))
    built = GuildBoard.from_columns(array("Q", [u for u, _ in rows]), array("q", [xp for _, xp in rows]))
    expected = sorted(rows, key=lambda row: (-row[1], row[0]))  # XP down, then lower user ID
    assert built.page(0, len(rows)) == expected
    assert [built.rank_of(user) for user, _ in expected] == list(range(1, len(rows) + 1))
    assert [built.xp_of(user) for user, _ in rows] == [xp for _, xp in rows]
    assert built.add(rows[0][0], 1) == (rows[0][1], rows[0][1] + 1) and len(built) == len(rows)
    assert GuildBoard(rows).page(0, len(rows)) == expected  # rows in any order: the same board
    empty = GuildBoard.from_columns(array("Q"), array("q"))
    assert empty.page(0, 10) == [] and len(empty) == 0 and empty.rank_of(1) is None


def test_board_ranks_and_pages_agree_with_a_plain_sort_under_random_changes():
    import random

    rng = random.Random(7)
    board = GuildBoard()
    xp: dict[int, int] = {}
    for _ in range(3000):
        user = rng.randrange(1, 400)
        amount = rng.choice([5, 5, 5, 10, 25])
        board.add(user, amount)
        xp[user] = xp.get(user, 0) + amount
    expected = sorted(xp.items(), key=lambda item: (-item[1], item[0]))  # XP down, then lower user ID
    assert board.page(0, len(expected)) == expected
    for rank, (user, _) in enumerate(expected, start=1):
        assert board.rank_of(user) == rank
    assert board.page(37, 10) == expected[37:47]


async def test_a_flush_cut_short_by_a_timeout_neither_loses_nor_doubles_its_xp(tmp_path):
    import asyncio

    path = tmp_path / "tally.db"
    db = await Database.open(path, busy_timeout=0.5)
    t = tracker(db, cooldown=0)
    await t.award(GUILD, 1, "alice")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the flush waits on the lock when its caller gives up on it
    try:
        with pytest.raises((TimeoutError, DatabaseBusy)):
            await asyncio.wait_for(t.flush(), timeout=0.05)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await t.flush()
    assert await db.member_xp(GUILD, 1) == 5
    assert await t.flush() == 0
    await db.close()


async def test_a_transaction_cancelled_while_waiting_for_the_lock_leaves_the_connection_usable(tmp_path):
    import asyncio

    path = tmp_path / "tally.db"
    db = await Database.open(path, busy_timeout=0.5)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises((TimeoutError, DatabaseBusy)):
            await asyncio.wait_for(db.set_setting(GUILD, "prefix", "?"), timeout=0.05)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await db.set_setting(GUILD, "prefix", "$")  # no "cannot start a transaction within a transaction"
    assert await db.stored_settings() == {GUILD: {"prefix": "$"}}
    await db.close()


async def test_an_admin_change_merges_with_pending_xp_and_a_write_of_unknown_outcome_rereads_the_board(db):
    t = tracker(db, cooldown=0)
    await t.award(GUILD, 1, "alice")  # pending, not yet written
    await t.award(GUILD, 2, "bob")
    _, totals = await t.change(GUILD, lambda: db.change_xp(GUILD, "give", {1: "alice"}, 100, 9, None))
    assert totals == {1: (5, 105)}
    assert await db.member_xp(GUILD, 1) == 105  # the pending 5 was written first, then the change

    async def committed_but_the_reply_was_lost():
        await db.change_xp(GUILD, "set", {2: "bob"}, 500, 9, None)
        raise DatabaseBusy("the connection went away during COMMIT")

    await t.award(GUILD, 1, "alice")  # pending again
    with pytest.raises(DatabaseBusy):
        await t.change(GUILD, committed_but_the_reply_was_lost)
    board = await t.board(GUILD)
    assert (board.xp_of(1), board.xp_of(2)) == (110, 500)  # read again: what is stored, plus what is pending
    assert board.rank_of(2) == 1
    _, taken = await t.change(GUILD, lambda: db.change_xp(GUILD, "take", {2: "bob"}, 1000, 9, None))
    assert taken == {2: (500, 0)}
    assert (await t.board(GUILD)).rank_of(2) is None  # no XP: off the board
