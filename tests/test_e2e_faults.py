"""End to end: what an unlucky owner and a hostile member do, and what Tally must still get right.

Each test here is one defect found by fault injection ("Nothing lost, no
apology"): a busy or read-only database, a second Tally, a damaged file,
numbers and text from chat that used to reach the database or the event loop
unguarded, replies that Discord would refuse, and a token revoked while running.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from db import Database
from tests.helpers import field, seed_xp


@contextmanager
def write_locked(folder: Path) -> Iterator[None]:
    """Hold the database's write lock from a second connection, as a backup tool does."""
    conn = sqlite3.connect(folder / "data" / "tally.db", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


# -- 1 and 2: data lost while the database is busy ------------------------------------


@pytest.mark.backends("sqlite")  # about the SQLite file itself
async def test_sigterm_while_a_flush_waits_on_a_locked_database_saves_everything(world, tally, tmp_path, storage):
    bot = await tally(XP_FLUSH_SECONDS="0.2", LOG_LEVEL="DEBUG")
    with write_locked(tmp_path):
        for _ in range(3):
            await world.say(world.alice, "chat while a backup holds the file")
        post = await world.ask(world.alice, "!level")
        assert field(post, "Total XP") == "15"
        await bot.wait_for_log("could not save XP")  # a flush failed on the lock
        await bot.wait_for_log("saving XP of 1 members", count=2)  # the flusher's next flush holds the batch
        bot.process.send_signal(signal.SIGTERM)  # ... and waits on the lock (5 s) as the signal arrives
        await bot.wait_for_log("still trying to save the XP of 1 members")  # shutdown waits rather than drops
    assert await bot.wait(timeout=30) == 0
    assert await storage.xp(world.guild.id) == {world.alice.id: 15}
    assert "shut down cleanly" in bot.log


@pytest.mark.backends("sqlite")  # about the SQLite file itself
async def test_a_lock_held_past_the_shutdown_bound_exits_1_and_the_next_start_adds_the_xp(
    world, tally, tmp_path, storage
):
    bot = await tally(XP_FLUSH_SECONDS="60", SHUTDOWN_SAVE_SECONDS="1", XP_PER_MESSAGE="100", COINS_PER_LEVEL="9")
    with write_locked(tmp_path):
        await world.say(world.alice, "one")
        await world.ask(world.bob, "two")  # both reach level 2: 9 coins each, queued with their XP
        await world.ask(world.alice, "!level")
        assert await bot.stop(timeout=30) == 1
    assert f"NOT SAVED: 200 XP of 2 members in guild {world.guild.id} (and 18 level-up coins)" in bot.log
    assert "giving up after 1 s: the XP of 2 members could not be written to the database" in bot.log
    [kept] = (tmp_path / "data").glob("tally.db.unsaved-*.json")
    assert f"kept that XP in data/{kept.name}" in bot.log
    assert "shut down cleanly" not in bot.log
    assert await storage.xp(world.guild.id) == {}

    again = await tally()  # the lock is gone: the next start adds what was kept
    assert not kept.exists()
    assert await storage.xp(world.guild.id) == {world.alice.id: 100, world.bob.id: 100}
    post = await world.ask(world.bob, "!balance")
    assert post.content == "You have 9 coins."
    assert await again.stop() == 0
    assert f"added the XP of 2 members that a shutdown kept in data/{kept.name}" in again.log


@pytest.mark.backends("sqlite")  # about the SQLite file itself
async def test_a_level_up_while_the_database_is_locked_keeps_its_coins_and_its_announcement(
    world, tally, tmp_path, storage
):
    bot = await tally(XP_PER_MESSAGE="100", COINS_PER_LEVEL="30")
    with write_locked(tmp_path):
        post = await world.ask(world.alice, "level up while a backup holds the file")
        assert post.content == f"<@{world.alice.id}> reached level 2! (+30 coins)"
    post = await world.ask(world.alice, "!balance")
    assert post.content == "You have 30 coins."
    assert await bot.stop() == 0
    assert await storage.rows("SELECT coins FROM wallets WHERE user_id = $1", world.alice.id) == [(30,)]
    assert await storage.rows("SELECT kind, amount, to_id FROM ledger") == [("level_up", 30, world.alice.id)]
    assert await storage.xp(world.guild.id) == {world.alice.id: 100}


@pytest.mark.backends("sqlite")  # about the SQLite file itself
async def test_level_up_coins_pending_at_shutdown_are_saved_with_their_xp(world, tally, tmp_path, storage):
    bot = await tally(XP_PER_MESSAGE="100", COINS_PER_LEVEL="7", XP_FLUSH_SECONDS="60")
    with write_locked(tmp_path):
        await world.ask(world.alice, "level 2")
        await world.ask(world.alice, "level 3")
        bot.process.send_signal(signal.SIGTERM)
        await bot.wait_for_log("still trying to save")
    assert await bot.wait(timeout=30) == 0
    assert await storage.rows("SELECT coins FROM wallets WHERE user_id = $1", world.alice.id) == [(14,)]
    assert await storage.xp(world.guild.id) == {world.alice.id: 200}


@pytest.mark.backends("sqlite")  # about the SQLite file itself
async def test_a_command_that_writes_while_the_database_is_locked_says_so_and_changes_nothing(world, tally, tmp_path):
    bot = await tally()
    with write_locked(tmp_path):
        post = await world.ask(world.mod, "!prefix ?", timeout=20)
        assert post.content == "The database is busy right now; nothing was changed. Try again in a minute."
    post = await world.ask(world.mod, "!prefix ?")
    assert post.content.startswith("Prefix set to `?`")
    assert await bot.stop() == 0
    assert "Traceback" not in bot.log


@pytest.mark.backends("sqlite")  # about the SQLite file itself
@pytest.mark.parametrize("action", ["kick", "ban"])
async def test_a_kick_or_ban_whose_case_cannot_be_written_says_what_happened(world, tally, tmp_path, action):
    bot = await tally()
    with write_locked(tmp_path):
        post = await world.ask(world.mod, f"!{action} {world.bob.id} spam", timeout=20)
    done = "kicked" if action == "kick" else "banned"
    assert post.content == f"I {done} bob, but the database was busy, so no case was recorded. Use `warn` to note it."
    assert [entry["target_id"] for entry in world.fake.audit_log] == [world.bob.id]
    assert await bot.stop() == 0
    assert f"{action} of user {world.bob.id} by {world.mod.id} in guild {world.guild.id} has no case" in bot.log
    assert "Traceback" not in bot.log


# -- 3 to 6: the database file at start ------------------------------------------------


@pytest.mark.backends("sqlite")  # about the SQLite file itself
async def test_a_second_tally_on_the_same_database_refuses_to_start_and_the_first_keeps_running(world, tally):
    first = await tally()
    await world.say(world.alice, "hello")
    second = await tally(wait_ready=False)
    assert await second.wait() == 2
    assert f"another Tally is using this database (pid {first.process.pid})" in second.log
    assert "Traceback" not in second.log
    assert len(world.fake.identifies) == 1  # the second never logged in
    post = await world.ask(world.alice, "!level")
    assert field(post, "Total XP") == "5"
    assert await first.stop() == 0


@pytest.mark.backends("sqlite")  # about the SQLite file itself
async def test_after_a_tally_stops_another_may_use_the_database(world, tally):
    first = await tally()
    assert await first.stop() == 0
    await tally()
    post = await world.ask(world.alice, "!prefix")
    assert post.content.startswith("My prefix here is `!`")


async def _a_database(folder: Path) -> Path:
    path = folder / "data" / "tally.db"
    db = await Database.open(path)
    await db.close()
    return path


async def start_refused_while(tally, path: Path, mode: int):
    """Start the bot while ``path`` has ``mode``; it must exit 2. Returns the run."""
    kept = path.stat().st_mode
    path.chmod(mode)
    try:
        bot = await tally(wait_ready=False)
        assert await bot.wait() == 2
    finally:
        path.chmod(kept)
    assert "Traceback" not in bot.log
    return bot


@pytest.mark.backends("sqlite")  # about the SQLite file itself
async def test_a_read_only_database_file_is_refused_at_start_naming_the_file(world, tally, tmp_path):
    path = await _a_database(tmp_path)
    before = path.read_bytes()
    bot = await start_refused_while(tally, path, 0o444)
    assert "data/tally.db is read-only: Tally must write to it" in bot.log
    assert path.read_bytes() == before
    assert world.fake.identifies == []


@pytest.mark.backends("sqlite")  # about the SQLite file itself
async def test_a_database_in_a_read_only_folder_is_refused_as_such(world, tally, tmp_path):
    path = await _a_database(tmp_path)
    bot = await start_refused_while(tally, path.parent, 0o555)
    assert "the folder data is not writable: SQLite must create its journal files" in bot.log
    assert "not a SQLite database" not in bot.log


@pytest.mark.backends("sqlite")  # about the SQLite file itself
async def test_a_damaged_page_is_refused_at_start_saying_where_the_backups_are(world, tally, tmp_path, storage):
    await seed_xp(storage, world.guild.id, [(user_id, user_id, f"member {user_id}") for user_id in range(1, 3001)])
    path = tmp_path / "data" / "tally.db"
    (tmp_path / "data" / "tally.db.v1-20260101-000000.bak").write_bytes(b"an earlier copy")
    page_size = 4096
    with open(path, "r+b") as file:  # a byte editor's work: garbage over a page of the members table
        file.seek(10 * page_size)
        file.write(b"\xff" * 64)
    damaged = path.read_bytes()
    bot = await tally(wait_ready=False)
    assert await bot.wait() == 2
    line = next(line for line in bot.log.splitlines() if "is damaged" in line)
    assert "data/tally.db is damaged" in line
    assert (
        "Tally's automatic backups are data/tally.db.v*.bak: the newest is data/tally.db.v1-20260101-000000.bak" in line
    )
    assert path.read_bytes() == damaged
    assert world.fake.identifies == []


# -- 7 to 11: input from chat, and replies Discord would refuse --------------------------


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("!case 9223372036854775808", "`number` must be a whole number from 1 to 1,000,000,000."),
        ("!reason 99999999999999999999 text", "`number` must be a whole number from 1 to 1,000,000,000."),
        ("!modlog {bob} 9223372036854775807", "`page` must be a whole number from 1 to 100,000."),
        ("!leaderboard 18446744073709551616", "`page` must be a whole number from 1 to 100,000."),
        ("!richest 9223372036854775808", "`page` must be a whole number from 1 to 100,000."),
        ("!pay {bob} 9223372036854775808", "`amount` must be a whole number from 1 to 1,000,000,000."),
    ],
)
async def test_numbers_beyond_their_maximum_get_the_calm_bad_number_line(world, tally, command, reply):
    await tally()
    post = await world.ask(world.mod, command.format(bob=world.bob.id))
    assert post.content.startswith(reply)
    assert "Sorry" not in post.content


@pytest.mark.parametrize(
    "prefix",
    [
        "\x00",
        "a\x00",
        "\x1b[",
        "!\u200b",
        "\u202e!",
        "\ufeff",
        "\u3164",
        "\u2800",
        "!\u034f",
        "!\ufe0f",
        "!\U000e0100",
        "!\u17b4",
    ],
)
async def test_prefixes_with_control_or_invisible_characters_are_refused(world, tally, storage, prefix):
    bot = await tally()
    post = await world.ask(world.mod, f"!prefix {prefix}")
    assert post.content == "That prefix won't work: a prefix cannot contain control or invisible characters."
    post = await world.ask(world.alice, "!prefix")
    assert post.content.startswith("My prefix here is `!`")
    assert await bot.stop() == 0
    assert await storage.rows("SELECT COUNT(*) FROM guild_settings") == [(0,)]


async def test_prefixes_that_mention_roles_or_everyone_are_still_refused(world, tally):
    await tally()
    for prefix in ("@everyone", f"<@&{world.mod_role.id}>", "@here"):
        post = await world.ask(world.mod, f"!prefix {prefix}")
        assert post.content == "That prefix won't work: a prefix cannot contain a mention (@ or <)."
        assert post.pings == {"users": [], "roles": [], "everyone": False}


async def test_a_2000_character_argument_is_echoed_cut_and_escaped(world, tally):
    await tally()
    crafted = "<@&" * 660
    post = await world.ask(world.alice, f"!level {crafted}")
    assert post.content.startswith("I can't find a member called <@&<@&")
    assert post.content.endswith("… in this server.")
    assert len(post.content) < 250
    assert post.pings == {"users": [], "roles": [], "everyone": False}


async def test_case_keeps_working_after_many_long_reason_corrections(world, tally):
    await tally()
    post = await world.ask(world.mod, f"!warn {world.bob.id} first")
    assert post.content.startswith("Case #1")
    for n in range(12):
        post = await world.ask(world.mod, f"!reason 1 correction {n} " + "x_*" * 160)  # escaping doubles the marks
        assert post.content.startswith("Case #1's reason is now")
    post = await world.ask(world.mod, "!case 1")
    history = field(post, "Earlier reasons")
    assert len(history) <= 1024
    lines = history.split("\n")
    assert "correction 10" in lines[0]  # newest first: the reason before the current one
    assert lines[-1].startswith("… and ") and lines[-1].endswith(" earlier")
    shown = len(lines) - 1
    assert lines[-1] == f"… and {12 - shown} earlier"


async def test_modlog_names_a_moderator_tally_has_not_seen_instead_of_saying_left(world, tally, storage):
    late = world.fake.add_user("latemod")
    db = await storage.open()
    await db.open_case(world.guild.id, "warn", world.bob.id, "bob", late.id, "spam")
    await db.close()
    await tally()
    # joins after Tally's start, so only Discord knows them: no GUILD_MEMBER_ADD reached the cache
    world.guild.members[late.id] = type(world.guild.members[world.mod.id])(late, [world.mod_role.id])
    post = await world.ask(world.mod, f"!modlog {world.bob.id}")
    assert "by latemod" in post.embeds[0]["description"]
    post = await world.ask(world.mod, "!case 1")
    assert field(post, "Moderator") == "latemod"


# -- 12: the token revoked while running ------------------------------------------------------


async def test_a_token_revoked_while_running_exits_2_with_the_portal_line_after_saving_xp(world, tally, storage):
    bot = await tally(XP_FLUSH_SECONDS="60")
    for _ in range(3):
        await world.say(world.alice, "chat")
    post = await world.ask(world.alice, "!level")
    assert field(post, "Total XP") == "15"
    await world.fake.revoke_token()
    assert await bot.wait() == 2
    assert "Discord rejected DISCORD_TOKEN: reset the token in the Discord Developer Portal" in bot.log
    assert "Traceback" not in bot.log
    assert world.fake.token not in bot.log
    assert await storage.xp(world.guild.id) == {world.alice.id: 15}


# -- signals at awkward moments ------------------------------------------------------------


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("moment", ["creating a new database", "logging in using static token"])
async def test_a_signal_while_starting_up_ends_cleanly_with_exit_0(world, tally, tmp_path, signal_name, moment):
    bot = await tally(wait_ready=False)
    await bot.wait_for_log(moment)
    bot.process.send_signal(getattr(signal, signal_name))
    assert await bot.wait() == 0
    assert "Traceback" not in bot.log
    again = await tally()  # nothing was left half-done: the file opens, the lock is free
    post = await world.ask(world.alice, "!prefix")
    assert post.content.startswith("My prefix here is `!`")
    assert await again.stop() == 0
