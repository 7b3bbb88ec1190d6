"""Coins and cases, on each backend: atomic, never overdrawn, fully ledgered, also from two connections."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from db import ConstraintViolated, Database, InsufficientCoins

GUILD = 333333333333333333


async def ledger_explains_every_balance(db: Database, guild_id: int = GUILD) -> None:
    rows = await db._store.fetch(
        "SELECT w.user_id, w.coins, CAST("
        "COALESCE((SELECT SUM(amount) FROM ledger WHERE guild_id = w.guild_id AND to_id = w.user_id), 0) - "
        "COALESCE((SELECT SUM(amount) FROM ledger WHERE guild_id = w.guild_id AND from_id = w.user_id), 0) "
        "AS BIGINT) FROM wallets w WHERE w.guild_id = $1",
        guild_id,
    )
    for user_id, coins, explained in rows:
        assert coins == explained, f"member {user_id}: balance {coins}, ledger says {explained}"


async def test_transfer_moves_coins_and_writes_one_ledger_row(db):
    await db.grant(GUILD, 1, "alice", 100, "give", 99)
    assert await db.transfer(GUILD, 1, 2, 30, from_name="alice", to_name="bob") == (70, 30)
    moves = await db.movements(GUILD, 2)
    assert [(m.from_id, m.to_id, m.amount, m.kind) for m in moves] == [(1, 2, 30, "transfer")]
    # The other way (the receiver has the lower ID): both balances returned, the sender's new name kept.
    assert await db.transfer(GUILD, 2, 1, 5, from_name="bobby", to_name="alice") == (25, 75)
    assert await db.richest(GUILD, 0, 10) == [(1, 75, "alice"), (2, 25, "bobby")]
    await ledger_explains_every_balance(db)


async def test_a_transfer_the_balance_cannot_cover_changes_nothing(db):
    await db.grant(GUILD, 1, "alice", 10, "give", 99)
    with pytest.raises(InsufficientCoins) as short:
        await db.transfer(GUILD, 1, 2, 11, from_name="alice", to_name="bob")
    assert short.value.balance == 10
    assert (await db.balance(GUILD, 1), await db.balance(GUILD, 2)) == (10, 0)
    assert len(await db.movements(GUILD, 1)) == 1  # only the grant


async def test_self_transfers_and_non_positive_amounts_are_refused(db):
    with pytest.raises(ValueError):
        await db.transfer(GUILD, 1, 1, 5, from_name="a", to_name="a")
    with pytest.raises(ValueError):
        await db.transfer(GUILD, 1, 2, 0, from_name="a", to_name="b")


async def test_the_schema_refuses_a_negative_balance_as_a_backstop(db):
    await db.grant(GUILD, 1, "alice", 5, "give", 99)
    with pytest.raises(ConstraintViolated):
        async with db.transaction() as conn:
            await conn.execute("UPDATE wallets SET coins = coins - 6 WHERE guild_id = $1 AND user_id = 1", GUILD)
    assert await db.balance(GUILD, 1) == 5


async def test_daily_is_claimed_once_per_day_and_remembers_when(storage):
    db = await storage.open()
    first = await db.claim_daily(GUILD, 1, "alice", 100, now=1_000_000)
    assert first == (True, 100, 1_000_000 + 86400)
    again = await db.claim_daily(GUILD, 1, "alice", 100, now=1_000_000 + 3600)
    assert again == (False, 100, 1_000_000 + 86400)
    await db.close()
    db = await storage.open()  # a restart does not reset it
    assert (await db.claim_daily(GUILD, 1, "alice", 100, now=1_000_000 + 86399)).claimed is False
    assert (await db.claim_daily(GUILD, 1, "alice", 100, now=1_000_000 + 86400)).balance == 200
    await ledger_explains_every_balance(db)
    await db.close()


async def test_take_never_goes_below_zero_and_set_ledgers_the_difference(db):
    await db.grant(GUILD, 1, "alice", 50, "give", 99)
    assert await db.take(GUILD, 1, 80, 99, "cleanup") == (50, 0)
    assert await db.take(GUILD, 1, 10, 99) == (0, 0)
    assert await db.set_balance(GUILD, 1, "alice", 500, 99) == 0
    assert await db.set_balance(GUILD, 1, "alice", 120, 99) == 500
    assert await db.balance(GUILD, 1) == 120
    kinds = [(m.kind, m.amount, m.from_id, m.to_id) for m in await db.movements(GUILD, 1)]
    assert kinds == [("set", 380, 1, None), ("set", 500, None, 1), ("take", 50, 1, None), ("give", 50, None, 1)]
    await ledger_explains_every_balance(db)


async def test_hundreds_of_concurrent_transfers_never_overdraw_and_conserve_coins(storage):
    db = await storage.open()
    other = await storage.open()  # a second connection, as a second process would have
    members = list(range(1, 7))
    for member in members:
        await db.grant(GUILD, member, f"m{member}", 100, "give", 99)
    rng = random.Random(4)

    async def one(conn: Database) -> bool:
        sender, receiver = rng.sample(members, 2)
        try:
            await conn.transfer(GUILD, sender, receiver, rng.randrange(1, 80), from_name="s", to_name="r")
            return True
        except InsufficientCoins:
            return False

    results = await asyncio.gather(*(one(db if i % 2 else other) for i in range(400)))
    assert any(results) and not all(results)  # some went through, some were refused
    balances = [await db.balance(GUILD, m) for m in members]
    assert min(balances) >= 0
    assert sum(balances) == 600
    await ledger_explains_every_balance(db)
    await db.close()
    await other.close()


async def test_cases_are_numbered_per_guild_and_corrections_keep_the_old_reason(db):
    first = await db.open_case(GUILD, "warn", 5, "eve", 9, "spam")
    second = await db.open_case(GUILD, "kick", 5, "eve", 9, None)
    elsewhere = await db.open_case(GUILD + 1, "ban", 5, "eve", 9, "raid")
    assert (first.number, second.number, elsewhere.number) == (1, 2, 1)
    corrected = await db.correct_reason(GUILD, 1, "spam in #general", 8)
    assert corrected.reason == "spam in #general"
    assert [(h.reason, h.moderator_id) for h in await db.reason_history(GUILD, 1)] == [("spam", 8)]
    assert await db.correct_reason(GUILD, 99, "nothing", 8) is None
    total, page = await db.cases_of(GUILD, 5, 0, 10)
    assert total == 2 and [c.number for c in page] == [2, 1]


async def test_concurrent_cases_get_distinct_numbers(db):
    cases = await asyncio.gather(*(db.open_case(GUILD, "warn", 5, "eve", 9, str(i)) for i in range(50)))
    assert sorted(c.number for c in cases) == list(range(1, 51))


async def test_daily_claims_at_once_from_two_connections_pay_exactly_once(storage):
    db = await storage.open()
    other = await storage.open()  # a second connection, as a second process would have
    claims = await asyncio.gather(
        *((db if i % 2 else other).claim_daily(GUILD, 1, "alice", 100, now=1_000_000) for i in range(40))
    )
    assert [c.claimed for c in claims].count(True) == 1
    assert {c.next_claim_at for c in claims} == {1_000_000 + 86400}
    assert await db.balance(GUILD, 1) == 100
    await ledger_explains_every_balance(db)
    await db.close()
    await other.close()


async def test_cases_opened_at_once_from_two_connections_get_distinct_gap_free_numbers(storage):
    db = await storage.open()
    other = await storage.open()
    cases = await asyncio.gather(
        *((db if i % 2 else other).open_case(GUILD, "warn", 5, "eve", 9, str(i)) for i in range(40))
    )
    assert sorted(c.number for c in cases) == list(range(1, 41))
    for case in cases:
        assert (await db.case(GUILD, case.number)).reason == case.reason
    await db.close()
    await other.close()


async def test_two_writers_hammering_transfers_dailies_takes_and_sets_keep_every_rule(storage):
    """Two connections (two pools on PostgreSQL, as two shard processes would have) mixing every coin write."""
    db, other = await storage.open(), await storage.open()
    members = list(range(1, 9))
    for member in members:
        await db.grant(GUILD, member, f"m{member}", 50, "give", 99)
    rng = random.Random(11)
    days = [1_000_000 + 86400 * day for day in range(3)]

    async def one(conn: Database) -> str:
        kind = rng.choice(["transfer", "transfer", "transfer", "daily", "take", "set"])
        member = rng.choice(members)
        try:
            if kind == "transfer":
                receiver = rng.choice([m for m in members if m != member])
                await conn.transfer(GUILD, member, receiver, rng.randrange(1, 40), from_name="s", to_name="r")
            elif kind == "daily":
                await conn.claim_daily(GUILD, member, "m", 10, now=rng.choice(days))
            elif kind == "take":
                await conn.take(GUILD, member, rng.randrange(1, 30), 99)
            else:
                await conn.set_balance(GUILD, member, "m", rng.randrange(0, 80), 99)
        except InsufficientCoins:
            return "refused"
        return kind

    done = await asyncio.gather(*(one(db if i % 2 else other) for i in range(300)))
    assert {"transfer", "daily", "take", "set", "refused"} <= set(done)
    assert min([await db.balance(GUILD, m) for m in members]) >= 0
    await ledger_explains_every_balance(db)  # every change, whoever made it, has its ledger row
    claims = Counter(row[0] for row in await db._store.fetch("SELECT to_id FROM ledger WHERE kind = 'daily'"))
    assert claims and max(claims.values()) <= len(days)  # never two claims of one member on one day
    await db.close()
    await other.close()
