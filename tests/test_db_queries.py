"""The store's queries, on each backend: settings, XP, plain text, transactions."""

from __future__ import annotations

import asyncio

import pytest

from db import XpGain
from storage.audit import MAX_XP

GUILD = 111111111111111111


async def test_settings_are_set_replaced_and_reset_per_guild_and_name(db):
    await db.set_setting(GUILD, "prefix", "?")
    await db.set_setting(GUILD, "prefix", "t!")
    await db.set_setting(GUILD, "xp", "15-25")
    await db.set_setting(GUILD + 1, "prefix", "$")
    assert await db.stored_settings() == {GUILD: {"prefix": "t!", "xp": "15-25"}, GUILD + 1: {"prefix": "$"}}
    await db.reset_setting(GUILD, "prefix")
    assert await db.stored_settings() == {GUILD: {"xp": "15-25"}, GUILD + 1: {"prefix": "$"}}


async def test_add_xp_adds_to_what_is_stored_and_keeps_first_seen(db):
    await db.add_xp([XpGain(GUILD, 1, 10, "old name", 1000), XpGain(GUILD, 2, 5, "bob", 1000)])
    await db.add_xp([XpGain(GUILD, 1, 7, "new name", 2000)])
    assert await db.member_xp(GUILD, 1) == 17
    assert await db.names(GUILD, [1, 2, 3]) == {1: "new name", 2: "bob"}
    assert await db.first_seen(GUILD, 1) == 1000


async def test_xp_is_per_guild(db):
    await db.add_xp([XpGain(GUILD, 1, 10, "a", 0), XpGain(GUILD + 1, 1, 3, "a", 0)])
    assert await db.guild_xp(GUILD) == [(1, 10)]
    assert await db.guild_xp(GUILD + 1) == [(1, 3)]


async def test_guild_xp_returns_every_member_of_the_guild_by_user_id(db):
    await db.add_xp([XpGain(GUILD, 30, 50, "c", 0), XpGain(GUILD, 10, 50, "a", 0), XpGain(GUILD, 20, 90, "b", 0)])
    rows = await db.guild_xp(GUILD)
    assert rows == [(10, 50), (20, 90), (30, 50)]


async def test_guild_xp_reads_a_big_guild_page_by_page_and_misses_no_one(db):
    from storage.sqlite import PAGE_ROWS

    count = PAGE_ROWS * 2 + 5  # two whole pages and a short one
    await db.add_xp([XpGain(GUILD, user, user % 7 + 1, "m", 0) for user in range(1, count + 1)])
    assert await db.guild_xp(GUILD) == [(user, user % 7 + 1) for user in range(1, count + 1)]


async def test_sql_looking_text_is_stored_as_plain_text(db):
    name = "Robert'); DROP TABLE members;--"
    await db.add_xp([XpGain(GUILD, 1, 5, name, 0)])
    await db.set_setting(GUILD, "prefix", "';--")
    assert await db.names(GUILD, [1]) == {1: name}
    assert await db.stored_settings() == {GUILD: {"prefix": "';--"}}


async def test_a_failed_transaction_rolls_back_everything_in_it(db):
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO guild_settings (guild_id, name, value) VALUES ($1, 'prefix', '?')", GUILD)
            raise RuntimeError("boom")
    assert await db.stored_settings() == {}


async def test_one_reward_sync_per_guild_its_progress_saved_and_ended(db):
    first = await db.start_sync(GUILD, 10, 20, now=1000)
    assert first is not None and (first.done, first.after_user, first.message_id) == (0, 0, None)
    assert await db.start_sync(GUILD, 11, 21, now=1001) is None  # one at a time
    await db.save_sync(first._replace(message_id=99, after_user=555, done=7, changed=3, failed=1))
    (saved,) = await db.syncs()
    assert (saved.channel_id, saved.message_id, saved.after_user, saved.done, saved.changed, saved.failed) == (
        10,
        99,
        555,
        7,
        3,
        1,
    )
    await db.end_sync(GUILD)
    assert await db.syncs() == [] and await db.sync_of(GUILD) is None


async def test_xp_changes_and_flushes_from_two_connections_at_once_keep_every_gain_and_number(storage):
    """An admin's changes on one connection while another (a second process) flushes chat XP into the same rows."""
    db, other = await storage.open(), await storage.open()
    await db.add_xp([XpGain(GUILD, user, 100, f"m{user}", 0) for user in range(1, 5)])
    changes = [db.change_xp(GUILD, "give", {user: f"m{user}"}, 10, 99, None) for user in range(1, 5) for _ in range(5)]
    flushes = [other.add_xp([XpGain(GUILD, user, 1, f"m{user}", 0) for user in range(1, 5)]) for _ in range(10)]
    results = await asyncio.gather(*changes, *flushes)
    numbers = sorted(entry.number for entries in results[: len(changes)] for entry in entries)
    assert numbers == list(range(1, 21))  # distinct and gap-free
    assert dict(await db.guild_xp(GUILD)) == {user: 100 + 50 + 10 for user in range(1, 5)}
    await db.close()
    await other.close()


async def test_take_stops_at_zero_give_at_the_maximum_and_a_reset_member_leaves_the_board(db):
    await db.add_xp([XpGain(GUILD, 1, 30, "a", 0), XpGain(GUILD, 2, MAX_XP - 5, "b", 0)])
    taken = await db.change_xp(GUILD, "take", {1: "a"}, 100, 9, "why")
    given = await db.change_xp(GUILD, "give", {2: "b"}, 100, 9, None)
    assert [(e.xp_before, e.xp_after) for e in taken + given] == [(30, 0), (MAX_XP - 5, MAX_XP)]
    assert await db.change_xp(GUILD, "take", {1: "a"}, 5, 9, None) == []  # nothing to take: no entry
    assert dict(await db.guild_xp(GUILD)) == {2: MAX_XP}  # a member at 0 is not on the board
    count, history = await db.xp_history(GUILD, 1, 0, 10)
    assert count == 1 and history[0].reason == "why" and history[0].actor_id == 9
