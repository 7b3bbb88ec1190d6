"""The store's queries, on each backend: prefixes, XP, plain text, transactions."""

from __future__ import annotations

import pytest

from db import ConstraintViolated, XpGain

GUILD = 111111111111111111


async def test_prefix_is_set_replaced_and_reset_per_guild(db):
    await db.set_prefix(GUILD, "?")
    await db.set_prefix(GUILD, "t!")
    await db.set_prefix(GUILD + 1, "$")
    assert await db.prefixes() == {GUILD: "t!", GUILD + 1: "$"}
    await db.reset_prefix(GUILD)
    assert await db.prefixes() == {GUILD + 1: "$"}


async def test_schema_refuses_a_prefix_longer_than_five_characters(db):
    with pytest.raises(ConstraintViolated):
        await db.set_prefix(GUILD, "toolong")
    assert await db.prefixes() == {}


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
    await db.set_prefix(GUILD, "';--")
    assert await db.names(GUILD, [1]) == {1: name}
    assert await db.prefixes() == {GUILD: "';--"}


async def test_a_failed_transaction_rolls_back_everything_in_it(db):
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO guild_settings (guild_id, prefix) VALUES ($1, $2)", GUILD, "?")
            raise RuntimeError("boom")
    assert await db.prefixes() == {}
