"""The store's queries, on each backend: settings, XP, plain text, transactions."""

from __future__ import annotations

import pytest

from db import XpGain

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


async def test_guild_xp_returns_every_member_of_the_guild(db):
    await db.add_xp([XpGain(GUILD, 30, 50, "c", 0), XpGain(GUILD, 10, 50, "a", 0), XpGain(GUILD, 20, 90, "b", 0)])
    assert sorted(await db.guild_xp(GUILD)) == [(10, 50), (20, 90), (30, 50)]


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
