"""End to end: coins as members and admins use them, including every refusal."""

from __future__ import annotations

import pytest

from tests.helpers import field


async def give(world, member, amount: int) -> None:
    post = await world.ask(world.mod, f"!coins give {member.id} {amount}")
    assert post.content.startswith("Gave"), post.content


async def test_daily_gives_coins_once_and_says_when_to_come_back(world, tally, tmp_path):
    bot = await tally(DAILY_COINS="150")
    post = await world.ask(world.alice, "!daily")
    assert post.content.startswith("You claimed 150 coins and now have 150 coins. Come back <t:")
    post = await world.ask(world.alice, "!daily")
    assert post.content.startswith("You already claimed today's coins. Your next claim is <t:")
    assert await bot.stop() == 0
    await tally()  # the claim time is stored: a restart does not reset it
    post = await world.ask(world.alice, "!daily")
    assert post.content.startswith("You already claimed")
    post = await world.ask(world.alice, "!balance")
    assert post.content == "You have 150 coins."


async def test_transfer_moves_coins_and_shows_both_balances(world, tally):
    await tally()
    await give(world, world.alice, 100)
    post = await world.ask(world.alice, f"!transfer <@{world.bob.id}> 40")
    assert post.content == "You paid bob 40 coins. You now have 60 coins; bob has 40 coins."
    post = await world.ask(world.alice, "!pay bob 60")
    assert post.content == "You paid bob 60 coins. You now have 0 coins; bob has 100 coins."
    post = await world.ask(world.alice, "!balance bob")
    assert post.content == "bob has 100 coins."


@pytest.mark.parametrize(
    ("amount", "reply"),
    [
        ("-5", "`amount` must be a whole number from 1 to 1,000,000,000. Usage: `!transfer <member> <amount>`"),
        ("0", "`amount` must be a whole number from 1 to 1,000,000,000. Usage: `!transfer <member> <amount>`"),
        (
            "99999999999999999999",
            "`amount` must be a whole number from 1 to 1,000,000,000. Usage: `!transfer <member> <amount>`",
        ),
        ("2.5", "That isn't a valid `amount`. Usage: `!transfer <member> <amount>`"),
        ("lots", "That isn't a valid `amount`. Usage: `!transfer <member> <amount>`"),
        ("50", "You only have 10 coins, so you can't pay 50 coins."),
    ],
)
async def test_bad_transfer_amounts_are_refused_and_move_nothing(world, tally, amount, reply):
    await tally()
    await give(world, world.alice, 10)
    post = await world.ask(world.alice, f"!transfer bob {amount}")
    assert post.content == reply
    post = await world.ask(world.alice, "!balance")
    assert post.content == "You have 10 coins."


async def test_transfers_to_yourself_or_to_a_bot_are_refused(world, tally):
    await tally()
    await give(world, world.alice, 10)
    post = await world.ask(world.alice, f"!pay <@{world.alice.id}> 5")
    assert post.content == "You can't pay yourself."
    post = await world.ask(world.alice, "!pay otherbot 5")
    assert post.content == "Bots can't hold coins."
    post = await world.ask(world.alice, "!transfer bob")
    assert post.content == "Missing `amount`. Usage: `!transfer <member> <amount>`"


async def test_admin_coins_need_manage_server_and_take_never_goes_below_zero(world, tally, storage):
    bot = await tally()
    post = await world.ask(world.alice, f"!coins give {world.alice.id} 1000")
    assert post.content == "You need the Manage Server permission to do that."
    post = await world.ask(world.mod, "!coins give alice 70 prize for the event")
    assert post.content == "Gave alice 70 coins; they now have 70 coins."
    post = await world.ask(world.mod, "!coins take alice 500")
    assert post.content == "Took 70 coins from alice; they now have 0 coins."
    post = await world.ask(world.mod, "!coins set alice 25")
    assert post.content == "Set alice's coins from 0 to 25."
    post = await world.ask(world.mod, "!coins history alice")
    lines = post.embeds[0]["description"].split("\n")
    assert "**+25** set" in lines[0] and "**-70** take" in lines[1] and "prize for the event" in lines[2]
    assert post.embeds[0]["footer"]["text"] == "Balance: 25 coins"
    assert await bot.stop() == 0
    assert await storage.rows("SELECT coins FROM wallets WHERE user_id = $1", world.alice.id) == [(25,)]
    assert await storage.rows("SELECT COUNT(*) FROM ledger") == [(3,)]


async def test_coins_per_level_are_paid_and_ledgered(world, tally):
    await tally(XP_PER_MESSAGE="100", COINS_PER_LEVEL="30")
    post = await world.ask(world.alice, "reach level 2")
    assert post.content == f"<@{world.alice.id}> reached level 2! (+30 coins)"
    post = await world.ask(world.alice, "!balance")
    assert post.content == "You have 30 coins."


async def test_profile_shows_level_rank_coins_and_dates(world, tally):
    bot = await tally(XP_FLUSH_SECONDS="60")
    await world.say(world.alice, "hello")
    await world.ask(world.alice, "!daily")
    post = await world.ask(world.alice, "!profile")
    assert field(post, "Level") == "1"
    assert field(post, "XP") == "5"
    assert field(post, "Rank") == "#1 of 1"
    assert field(post, "Coins") == "100"
    assert field(post, "First seen by Tally") == "just now"  # the first XP is not written yet
    assert field(post, "Joined the server").startswith("<t:")
    post = await world.ask(world.alice, "!profile carol")
    assert field(post, "Rank") == "not ranked yet" and field(post, "First seen by Tally") == "not yet"
    assert await bot.stop() == 0
    await tally()
    post = await world.ask(world.alice, "!profile")
    assert field(post, "First seen by Tally").startswith("<t:") and field(post, "Coins") == "100"


async def test_richest_lists_members_by_coins_including_those_who_left(world, tally):
    await tally()
    await give(world, world.alice, 50)
    await give(world, world.carol, 80)
    await world.fake.remove_member(world.guild, world.carol)
    post = await world.ask(world.bob, "!richest")
    assert post.embeds[0]["description"] == "**#1** carol · 80 coins\n**#2** alice · 50 coins"
    post = await world.ask(world.bob, "!richest 2")
    assert post.content == "There is only 1 page right now."
    post = await world.ask(world.alice, "!leaderboard coins")  # the same list, for those who look there
    assert post.embeds[0]["description"] == "**#1** carol · 80 coins\n**#2** alice · 50 coins"


async def test_many_transfers_at_once_through_the_bot_never_overdraw(world, tally, storage):
    bot = await tally()
    members = [world.alice, world.bob, world.carol]
    for member in members:
        await give(world, member, 100)
    before = len(world.fake.posts)
    payers = [(members[i % 3], members[(i + 1) % 3]) for i in range(120)]
    for payer, payee in payers:  # sent back to back, handled concurrently by the bot
        await world.say(payer, f"!pay {payee.id} 7")
    await world.fake.wait_for(lambda: len(world.fake.posts) >= before + 120, timeout=30, what="120 replies")
    replies = [p.content for p in world.fake.posts[before:]]
    assert all(r.startswith(("You paid", "You only have")) for r in replies)
    assert await bot.stop() == 0
    balances = [row[0] for row in await storage.rows("SELECT coins FROM wallets")]
    assert min(balances) >= 0 and sum(balances) == 300
    ledger = await storage.rows(
        "SELECT CAST(w.coins - COALESCE((SELECT SUM(amount) FROM ledger WHERE to_id = w.user_id), 0)"
        " + COALESCE((SELECT SUM(amount) FROM ledger WHERE from_id = w.user_id), 0) AS BIGINT) FROM wallets w",
    )
    assert ledger == [(0,)] * 3  # the ledger explains every balance
