"""``python bot.py export``: one server's data (or every server's) as JSON or CSV, on each backend."""

from __future__ import annotations

import csv
import json

import pytest

from db import XpGain
from tests.helpers import seed_xp
from tests.test_backup import tool

GUILD, OTHER = 555555555555555555, 666666666666666666
ALICE, BOB, MOD = 900000000000000001, 900000000000000002, 900000000000000009


async def fill(storage) -> None:
    """A server with members, coins, a ledger, a case whose reason was corrected, settings and rewards; and another."""
    db = await storage.open()
    await db.add_xp([XpGain(GUILD, ALICE, 250, "alice", 1_700_000_000), XpGain(GUILD, BOB, 40, 'bob ✓ "q"', 5)])
    await db.add_xp([XpGain(OTHER, ALICE, 7, "alice elsewhere", 9)])
    await db.grant(GUILD, ALICE, "alice", 500, "give", MOD, "welcome")
    await db.transfer(GUILD, ALICE, BOB, 120, from_name="alice", to_name="bob")
    case = await db.open_case(GUILD, "warn", BOB, "bob", MOD, "first")
    await db.correct_reason(GUILD, case.number, "second", MOD)
    await db.set_setting(GUILD, "prefix", "?")
    await db.set_setting(GUILD, "curve", "mee6")
    await db.set_setting(GUILD, "rewards", f"5:{10**18},10:{10**18 + 1}")
    await db.close()


async def test_the_json_export_holds_every_part_of_one_server_and_is_the_same_twice(storage, tmp_path):
    await fill(storage)
    code, _, err = await tool(storage, tmp_path, "export", "--guild", str(GUILD), "--out", "one.json")
    assert code == 0, err
    assert err.splitlines()[-1] == "exported 1 server to one.json" and "2/2 rows" in err
    code, _, err = await tool(storage, tmp_path, "export", "--guild", str(GUILD), "--out", "two.json")
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()

    document = json.loads((tmp_path / "one.json").read_text(encoding="utf-8"))
    assert (document["format"], document["version"], len(document["guilds"])) == ("tally-export", 1, 1)
    (server,) = document["guilds"]
    assert server["guild_id"] == str(GUILD) and server["curve"] == "mee6"
    assert server["settings"] == {"curve": "mee6", "prefix": "?", "rewards": f"5:{10**18},10:{10**18 + 1}"}
    assert server["role_rewards"] == [{"level": 5, "role_id": str(10**18)}, {"level": 10, "role_id": str(10**18 + 1)}]
    assert server["members"] == [
        {"user_id": str(ALICE), "xp": 250, "level": 1, "name": "alice", "first_seen": 1_700_000_000},  # mee6: 2 at 255
        {"user_id": str(BOB), "xp": 40, "level": 0, "name": 'bob ✓ "q"', "first_seen": 5},
    ]
    assert server["wallets"] == [
        {"user_id": str(ALICE), "coins": 380, "last_daily": None, "name": "alice"},
        {"user_id": str(BOB), "coins": 120, "last_daily": None, "name": "bob"},
    ]
    assert [(m["kind"], m["from_id"], m["to_id"], m["amount"]) for m in server["ledger"]] == [
        ("give", None, str(ALICE), 500),
        ("transfer", str(ALICE), str(BOB), 120),
    ]
    assert server["ledger"][0]["actor_id"] == str(MOD) and server["ledger"][0]["reason"] == "welcome"
    (case,) = server["cases"]
    assert (case["number"], case["action"], case["target_id"], case["reason"]) == (1, "warn", str(BOB), "second")
    assert [old["reason"] for old in case["earlier_reasons"]] == ["first"]


async def test_the_csv_export_writes_one_file_per_table_for_every_server(storage, tmp_path):
    await fill(storage)
    code, _, err = await tool(storage, tmp_path, "export", "--format", "csv", "--out", "tables")
    assert code == 0, err
    assert err.splitlines()[-1] == "exported 2 servers to tables"
    files = sorted(path.name for path in (tmp_path / "tables").iterdir())
    assert files == [
        "case_reasons.csv",
        "cases.csv",
        "ledger.csv",
        "members.csv",
        "role_rewards.csv",
        "settings.csv",
        "wallets.csv",
    ]
    with open(tmp_path / "tables" / "members.csv", encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    assert rows == [
        ["guild_id", "user_id", "xp", "level", "name", "first_seen"],
        [str(GUILD), str(ALICE), "250", "1", "alice", "1700000000"],
        [str(GUILD), str(BOB), "40", "0", 'bob ✓ "q"', "5"],
        [str(OTHER), str(ALICE), "7", "1", "alice elsewhere", "9"],  # no curve set there: the default, linear
    ]
    with open(tmp_path / "tables" / "case_reasons.csv", encoding="utf-8", newline="") as file:
        (header, reason) = list(csv.reader(file))
    assert header == ["guild_id", "number", "reason", "moderator_id", "replaced_at"]
    assert reason[:4] == [str(GUILD), "1", "first", str(MOD)] and reason[4].isdigit()


async def test_an_unknown_server_or_no_database_is_one_line_and_no_file(storage, tmp_path):
    await fill(storage)
    code, out, err = await tool(storage, tmp_path, "export", "--guild", "123456789012345678")
    assert code == 2 and err == "tally export: the database holds nothing for server 123456789012345678\n"
    code, out, err = await tool(storage, tmp_path, "export", "--guild", "abc")
    assert code == 2 and "--guild: must be a Discord ID" in err
    assert not [path for path in tmp_path.iterdir() if path.name.startswith("tally-export")]


async def test_export_in_chat_posts_the_file_with_pending_xp_to_admins_only(world, tally, storage):
    await seed_xp(storage, world.guild.id, [(world.alice.id, 150, "alice")])
    await tally(XP_PER_MESSAGE="5", XP_FLUSH_SECONDS="60")
    await world.say(world.bob, "chat")  # pending in memory, not yet written
    post = await world.ask(world.alice, "!export")
    assert post.content == "You need the Manage Server permission to do that."
    count = len(world.fake.posts)
    post = await world.ask(world.mod, "!export")
    assert post.content == "I sent you this server's export by DM."
    (dm,) = [p for p in world.fake.posts[count:] if p.files]  # by DM: cases and moderators are not for the channel
    assert dm.channel_id != world.general.id
    assert dm.content.startswith("Tally Test Server's data as of now: 2 members with XP")
    ((name, data),) = dm.files.items()
    assert name == f"tally-export-{world.guild.id}.json"
    (server,) = json.loads(data)["guilds"]
    assert {m["user_id"]: m["xp"] for m in server["members"]} == {str(world.alice.id): 150, str(world.bob.id): 5}
    post = await world.ask(world.mod, "!export")
    assert post.content.startswith("Slow down: try that again in")


@pytest.mark.backends("sqlite")
async def test_an_export_over_the_upload_limit_says_how_to_get_it(world, tally, storage):
    await seed_xp(storage, world.guild.id, [(10**17 + i, 5, f"m{i}") for i in range(200_000)])
    await tally()
    post = await world.ask(world.mod, "!export", timeout=30)
    assert post.content == (
        "This server's export would be larger than Discord's upload limit here (10 MiB). "
        f"The bot's owner can run `python bot.py export --guild {world.guild.id}` on the bot's machine."
    )


async def test_export_in_chat_to_an_admin_whose_dms_are_closed_says_so(world, tally, storage):
    await seed_xp(storage, world.guild.id, [(world.alice.id, 150, "alice")])
    world.mod.dms_closed = True
    await tally()
    post = await world.ask(world.mod, "!export")
    assert post.content == "I can't DM you the export: allow DMs from this server's members, then try again."
    assert not [p for p in world.fake.posts if p.files]
