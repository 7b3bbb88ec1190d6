"""``python bot.py import``: every format Tally reads, the modes, the dry run, and every bad file, on each backend.

The files are made here in the shapes the other bots write (see imports.py for
where each shape is documented); nothing is fetched.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from db import XpGain
from tests.test_backup import tool
from tests.test_e2e_rewards import let_tally_manage_roles, roles_of
from tests.test_export import GUILD, fill

PLAYERS = 1000
ROLE_A, ROLE_B = 700000000000000001, 700000000000000002
OTHER_GUILD = 123456789012345678


def mee6_page(page: int, players: list[tuple[int, int, int]], guild: int = GUILD, **extra) -> dict:
    """One page as MEE6's public leaderboard API returns it (``.../leaderboard/<guild>?limit=1000&page=N``)."""
    return {
        "admin": False,
        "banner_url": None,
        "guild": {"id": str(guild), "name": "A server", "icon": None, "premium": False},
        "is_member": True,
        "page": page,
        "player": None,
        "players": [
            {
                "avatar": "0" * 32,
                "detailed_xp": [xp % 100, 155, xp],
                "discriminator": "0",
                "guild_id": str(guild),
                "id": str(user_id),
                "level": level,
                "message_count": xp // 20,
                "username": f"player{user_id % 10_000}",
                "xp": xp,
            }
            for user_id, xp, level in players
        ],
        "role_rewards": [],
        "user_guild_settings": None,
        "xp_per_message": [15, 25],
        "xp_rate": 1,
        **extra,
    }


def players(count: int, start: int = 0) -> list[tuple[int, int, int]]:
    return [(800000000000000000 + i, 100 + 37 * i, 1 + i // 100) for i in range(start, start + count)]


async def xp_of(storage) -> dict[int, int]:
    return await storage.xp(GUILD)


async def audit_rows(storage) -> list[tuple]:
    return await storage.rows("SELECT user_id, actor_id, kind, xp_before, xp_after FROM xp_audit ORDER BY number")


async def test_a_tally_export_round_trips_into_an_empty_database_byte_for_byte(storage, tmp_path):
    await fill(storage)
    code, _, err = await tool(storage, tmp_path, "export", "--guild", str(GUILD), "--out", "first.json")
    assert code == 0, err
    empty = await storage.sibling("empty")  # run in its own folder: a SQLite sibling's path is relative to it
    first, second = str(tmp_path / "first.json"), str(tmp_path / "second.json")
    code, out, err = await tool(
        empty, empty.folder, "import", first, "--guild", str(GUILD), "--apply", "--include-settings"
    )
    assert code == 0, err
    assert out.startswith(f"found: Tally export: 2 members, for server {GUILD}\n")
    assert "coins, ledger and cases: imported" in out
    code, _, err = await tool(empty, empty.folder, "export", "--guild", str(GUILD), "--out", second)
    assert code == 0, err
    assert (tmp_path / "first.json").read_bytes() == (tmp_path / "second.json").read_bytes()
    assert [row[2] for row in await audit_rows(empty)] == ["import", "import"]  # each change is in the audit log


async def test_a_realistic_mee6_page_is_shown_by_a_dry_run_then_applied_with_its_settings(storage, tmp_path):
    db = await storage.open()
    first = players(PLAYERS)
    await db.add_xp([XpGain(GUILD, first[0][0], 10**6, "already high", 0), XpGain(GUILD, first[1][0], 50, "low", 0)])
    await db.close()
    rewards = [{"rank": 5, "role": {"id": str(ROLE_A), "name": "Regulars"}}, {"rank": 10, "role_id": str(ROLE_B)}]
    (tmp_path / "page0.json").write_text(json.dumps(mee6_page(0, first, role_rewards=rewards)), encoding="utf-8")

    code, out, err = await tool(storage, tmp_path, "import", "page0.json", "--guild", str(GUILD))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"found: MEE6 leaderboard pages, 1 page: 1,000 members, for server {GUILD}"
    assert lines[1] == "mode keep-higher: 998 added, 1 raised, 0 lowered, 1 unchanged"
    assert (
        f"settings in the file (applied only with --include-settings): curve mee6, rewards 5:{ROLE_A},10:{ROLE_B}, xp 15-25"
        in out
    )
    assert lines[-1] == "dry run: nothing was changed. Run it again with --apply to write it."
    assert len(await xp_of(storage)) == 2 and await audit_rows(storage) == []  # nothing written

    code, out, err = await tool(
        storage, tmp_path, "import", "page0.json", "--guild", str(GUILD), "--apply", "--include-settings"
    )
    assert code == 0, err
    assert "imported: 999 members changed, each in the XP audit log (#1 to #999)" in out
    assert "reward roles: a !rewards sync is queued; it runs when Tally starts" in out
    stored = await xp_of(storage)
    assert len(stored) == PLAYERS and stored[first[0][0]] == 10**6 and stored[first[1][0]] == first[1][1]
    assert all(stored[user_id] == xp for user_id, xp, _ in first[1:])
    rows = await audit_rows(storage)
    assert len(rows) == 999 and {row[1] for row in rows} == {None} and {row[2] for row in rows} == {"import"}
    settings = dict(await storage.rows("SELECT name, value FROM guild_settings WHERE guild_id = $1", GUILD))
    assert settings == {"xp": "15-25", "curve": "mee6", "rewards": f"5:{ROLE_A},10:{ROLE_B}"}
    assert await storage.rows("SELECT guild_id FROM reward_syncs") == [(GUILD,)]


@pytest.mark.parametrize("shape", ["concatenated", "folder", "list of pages", "downloader"])
async def test_mee6_pages_are_read_one_after_another_in_a_file_as_a_list_or_from_a_folder(storage, tmp_path, shape):
    pages = [mee6_page(0, players(3)), mee6_page(1, players(2, start=3))]
    if shape == "concatenated":  # pages saved one after another into one file
        (tmp_path / "pages.json").write_text("\n".join(json.dumps(page) for page in pages), encoding="utf-8")
        source = "pages.json"
    elif shape == "folder":
        (tmp_path / "pages").mkdir()
        for n, page in enumerate(pages):
            (tmp_path / "pages" / f"page{n}.json").write_text(json.dumps(page), encoding="utf-8")
        source = "pages"
    elif shape == "list of pages":
        (tmp_path / "pages.json").write_text(json.dumps(pages), encoding="utf-8")
        source = "pages.json"
    else:  # a list of each page's players
        (tmp_path / "pages.json").write_text(json.dumps([page["players"] for page in pages]), encoding="utf-8")
        source = "pages.json"
    code, out, err = await tool(storage, tmp_path, "import", source, "--guild", str(GUILD), "--apply")
    assert code == 0, err
    assert "5 members" in out.splitlines()[0]
    assert await xp_of(storage) == {user_id: xp for user_id, xp, _ in players(5)}


async def test_mee6_dashboard_csv(storage, tmp_path):
    (tmp_path / "mee6.csv").write_text(
        "id,username,discriminator,xp,level,messages\n"
        "800000000000000001,ann,0,1500,8,90\n"
        '800000000000000002,"bo, the second",1234,20,0,2\n',
        encoding="utf-8",
    )
    code, out, err = await tool(storage, tmp_path, "import", "mee6.csv", "--guild", str(GUILD), "--apply")
    assert code == 0, err
    assert out.startswith("found: MEE6 dashboard CSV: 2 members")
    assert await xp_of(storage) == {800000000000000001: 1500, 800000000000000002: 20}


def dls_file(path, *, with_guild: bool = True) -> None:
    """A DiscordLevelingSystem database: no key, so a member may appear twice."""
    conn = sqlite3.connect(path)
    guild_column = "guild_id INT, " if with_guild else ""
    conn.execute(
        f"CREATE TABLE leaderboard ({guild_column}member_id INT, member_name TEXT, member_level INT, member_xp INT, "
        "member_total_xp INT)"
    )
    rows = [
        (GUILD, 800000000000000001, "ann", 3, 20, 320),
        (GUILD, 800000000000000001, "ann", 4, 50, 450),  # the same member again, higher: wins
        (GUILD, 800000000000000002, "bo", 1, 5, 105),
        (OTHER_GUILD, 800000000000000003, "elsewhere", 9, 0, 900),
    ]
    if with_guild:
        conn.executemany("INSERT INTO leaderboard VALUES (?, ?, ?, ?, ?, ?)", rows)
    else:
        conn.executemany("INSERT INTO leaderboard VALUES (?, ?, ?, ?, ?)", [row[1:] for row in rows[:3]])
    conn.commit()
    conn.close()


@pytest.mark.parametrize("with_guild", [True, False], ids=["guild_id column", "older layout"])
async def test_a_discordlevelingsystem_database_takes_the_highest_total_of_duplicates(storage, tmp_path, with_guild):
    dls_file(tmp_path / "levels.db", with_guild=with_guild)
    code, out, err = await tool(storage, tmp_path, "import", "levels.db", "--guild", str(GUILD), "--apply")
    assert code == 0, err
    assert "1 duplicate rows resolved by the highest total: 2 members" in out.splitlines()[0]
    assert await xp_of(storage) == {800000000000000001: 450, 800000000000000002: 105}


async def test_levelup_server_and_cog_backups_and_a_lurkr_export(storage, tmp_path):
    server = {
        "users": {"800000000000000001": {"xp": 1234.75, "level": 3, "messages": 10}},
        "xp": [3, 6],
        "levelroles": {"5": ROLE_A},
    }
    (tmp_path / "levelup.json").write_text(json.dumps(server), encoding="utf-8")
    code, out, err = await tool(storage, tmp_path, "import", "levelup.json", "--guild", str(GUILD), "--apply")
    assert code == 0, err
    assert out.startswith("found: LevelUp (Red) server backup: 1 members")
    assert "settings in the file (applied only with --include-settings): rewards 5:" in out
    cog = {"configs": {str(GUILD): {"users": {"800000000000000002": {"xp": 50.0, "level": 1}}}}}
    (tmp_path / "cog.json").write_text(json.dumps(cog), encoding="utf-8")
    code, out, err = await tool(storage, tmp_path, "import", "cog.json", "--guild", str(GUILD), "--apply")
    assert code == 0, err
    lurkr = {"levels": [{"userId": "800000000000000003", "xp": 77, "level": 0}]}
    (tmp_path / "lurkr.json").write_text(json.dumps(lurkr), encoding="utf-8")
    code, out, err = await tool(storage, tmp_path, "import", "lurkr.json", "--guild", str(GUILD), "--apply")
    assert code == 0, err
    assert out.startswith("found: Lurkr export: 1 members")
    assert await xp_of(storage) == {800000000000000001: 1234, 800000000000000002: 50, 800000000000000003: 77}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--mode", "keep-higher"], {1: 500, 2: 300}),
        (["--mode", "replace"], {1: 200, 2: 300}),
        (["--mode", "add"], {1: 700, 2: 300}),
        (["--mode", "replace", "--by", "level"], {1: 900, 2: 400}),  # linear: level L starts at (L - 1) * 100
    ],
)
async def test_the_modes_and_import_by_level(storage, tmp_path, arguments, expected):
    ids = {1: 800000000000000001, 2: 800000000000000002}
    db = await storage.open()
    await db.add_xp([XpGain(GUILD, ids[1], 500, "ann", 0)])
    await db.close()
    lurkr = {
        "levels": [{"userId": str(ids[1]), "xp": 200, "level": 10}, {"userId": str(ids[2]), "xp": 300, "level": 5}]
    }
    (tmp_path / "lurkr.json").write_text(json.dumps(lurkr), encoding="utf-8")
    code, out, err = await tool(storage, tmp_path, "import", "lurkr.json", "--guild", str(GUILD), "--apply", *arguments)
    assert code == 0, err
    assert await xp_of(storage) == {ids[n]: xp for n, xp in expected.items()}
    if "level" in arguments:
        assert "--by level: each member gets the least XP of their level on this server's curve (linear)" in out


BAD_FILES = {
    "not JSON": ("bad.json", "{this is not json", "bad.json is not valid JSON at line 1, column 2"),
    "truncated": ("cut.json", json.dumps(mee6_page(0, players(3)))[:-40], "(the file ends too early: a truncated"),
    "wrong guild": (
        "other.json",
        json.dumps(mee6_page(0, players(2), guild=OTHER_GUILD)),
        f"the file is from server {OTHER_GUILD}, not {GUILD}: is --guild right?",
    ),
    "negative XP": ("neg.json", json.dumps({"levels": [{"userId": "800000000000000001", "xp": -5}]}), "is -5, below 0"),
    "fractional XP": (
        "frac.json",
        json.dumps({"levels": [{"userId": "800000000000000001", "xp": 12.5}]}),
        "xp is 12.5, not a whole number",
    ),
    "absurd XP": (
        "big.json",
        json.dumps({"levels": [{"userId": "800000000000000001", "xp": 10**13}]}),
        "more than the 1,000,000,000,000 any member can hold",
    ),
    "duplicate member": (
        "dup.json",
        json.dumps({"levels": [{"userId": "800000000000000001", "xp": 5}, {"userId": "800000000000000001", "xp": 6}]}),
        "member 800000000000000001 appears twice",
    ),
    "a number of 5,000 digits": (
        "long.json",
        '{"levels": [{"userId": "1", "xp": ' + "9" * 5000 + "}]}",
        "not JSON any bot writes",
    ),
    "nesting past any sense": ("deep.json", "[" * 100_000 + "]" * 100_000, "not JSON any bot writes"),
    "a digit that is not one": (
        "sup.json",
        json.dumps({"levels": [{"userId": "8000000000000000²", "xp": 5}]}),
        "a userId '8000000000000000²' is not a Discord ID",
    ),
    "rewards that are not a list": (
        "rewards.json",
        json.dumps(mee6_page(0, players(1), role_rewards=5)),
        "role_rewards is 5, not a list",
    ),
    "unknown format": ("what.json", json.dumps({"hello": "world"}), "is JSON, but not a format Tally reads. It reads:"),
    "not SQLite": (
        "fake.db",
        "SQLite format 3\x00" + "garbage" * 100,
        "fake.db is not a DiscordLevelingSystem database",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
async def test_a_bad_file_gets_one_line_and_changes_nothing(storage, tmp_path, case):
    await fill(storage)
    before = await xp_of(storage)
    name, content, says = BAD_FILES[case]
    (tmp_path / name).write_text(content, encoding="utf-8")
    code, out, err = await tool(storage, tmp_path, "import", name, "--guild", str(GUILD), "--apply")
    assert code == 2, out + err
    assert err.startswith("tally import: ") and err.count("\n") == 1 and says in err, err
    assert await xp_of(storage) == before and await audit_rows(storage) == []


async def test_a_file_of_a_gigabyte_is_refused_without_being_read(storage, tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as file:  # sparse: a gigabyte on paper, nothing on disk
        file.write(b"{")
        file.truncate(2**30)
    code, _, err = await tool(storage, tmp_path, "import", "huge.json", "--guild", str(GUILD))
    assert code == 2 and "huge.json is 1,024 MiB; Tally reads import files of up to 256 MiB" in err


async def test_an_import_is_all_or_nothing(storage, tmp_path):
    await fill(storage)
    code, _, err = await tool(storage, tmp_path, "export", "--guild", str(GUILD), "--out", "export.json")
    document = json.loads((tmp_path / "export.json").read_text(encoding="utf-8"))
    document["guilds"][0]["ledger"][-1]["kind"] = "stolen"  # the schema refuses it, after the members were written
    (tmp_path / "export.json").write_text(json.dumps(document), encoding="utf-8")
    empty = await storage.sibling("empty")
    code, out, err = await tool(
        empty, empty.folder, "import", str(tmp_path / "export.json"), "--guild", str(GUILD), "--apply"
    )
    assert code == 2 and "nothing was imported" in err, out + err
    assert await empty.xp(GUILD) == {} and await audit_rows(empty) == []


async def test_apply_waits_for_the_bot_to_stop_but_a_dry_run_does_not(world, tally, storage, tmp_path):
    lurkr = {"levels": [{"userId": str(world.alice.id), "xp": 300}]}
    (tmp_path / "lurkr.json").write_text(json.dumps(lurkr), encoding="utf-8")
    bot = await tally()
    guild = str(world.guild.id)
    code, out, err = await tool(storage, tmp_path, "import", "lurkr.json", "--guild", guild)
    assert code == 0 and "1 added" in out, err
    code, out, err = await tool(storage, tmp_path, "import", "lurkr.json", "--guild", guild, "--apply")
    assert code == 2 and "a Tally bot is running on this database; stop it first" in err
    assert await bot.stop() == 0
    code, out, err = await tool(storage, tmp_path, "import", "lurkr.json", "--guild", guild, "--apply")
    assert code == 0, err
    await tally()
    post = await world.ask(world.alice, "!level")
    assert post.embeds and any(f["value"] == "300" for f in post.embeds[0]["fields"])


async def test_the_bot_brings_reward_roles_in_line_with_imported_levels_when_it_starts(world, tally, storage, tmp_path):
    let_tally_manage_roles(world)
    regulars = world.fake.add_role(world.guild, "Regulars", position=1)
    db = await storage.open()
    await db.set_setting(world.guild.id, "rewards", f"2:{regulars.id}")
    await db.close()
    lurkr = {"levels": [{"userId": str(world.alice.id), "xp": 150}]}  # level 2 on the linear curve
    (tmp_path / "lurkr.json").write_text(json.dumps(lurkr), encoding="utf-8")
    code, out, err = await tool(storage, tmp_path, "import", "lurkr.json", "--guild", str(world.guild.id), "--apply")
    assert code == 0, err
    assert "reward roles: a !rewards sync is queued; it runs when Tally starts" in out
    await tally()
    path = f"/guilds/{world.guild.id}/members/{world.alice.id}/roles/{regulars.id}"
    await world.fake.wait_for_request("PUT", path, after=0)  # it may come before this line runs
    assert roles_of(world, world.alice) == {regulars.id}
