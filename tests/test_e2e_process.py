"""End to end: the process as an owner runs it: configuration, login, gateway, shutdown."""

from __future__ import annotations

import gc
import platform
import signal
import ssl
import tomllib
import weakref

import aiohttp
import discord
import pytest
from aiohttp.client_reqrep import ConnectionKey

from bot import GIL_SWITCH_SECONDS, freeze_caches, unreachable
from tests.conftest import ROOT
from tests.helpers import field


async def test_bad_configuration_stops_start_up_with_one_line_naming_the_variable(world, tally):
    bot = await tally(wait_ready=False, XP_PER_MESSAGE="lots")
    assert await bot.wait() == 2
    assert (
        bot.log.strip()
        == "tally: configuration error: XP_PER_MESSAGE must be a whole number from 1 to 1000 (got 'lots')"
    )
    assert world.fake.requests == []


async def test_a_missing_token_stops_start_up_with_exit_code_2(world, tally):
    bot = await tally(wait_ready=False, DISCORD_TOKEN=None)
    assert await bot.wait() == 2
    assert "DISCORD_TOKEN is missing" in bot.log
    assert f"(there is no .env in {bot.folder}: start Tally in its own folder)" in bot.log  # where it looked


async def test_settings_are_read_from_dot_env_in_the_working_folder(world, tally, tmp_path):
    (tmp_path / ".env").write_text("# my settings\nDEFAULT_PREFIX=?\nXP_PER_MESSAGE=42\n")
    await tally()
    await world.say(world.alice, "hi")
    post = await world.ask(world.alice, "?level")
    assert field(post, "Total XP") == "42"


async def test_a_rejected_token_exits_with_a_developer_portal_hint_and_no_traceback(world, tally):
    wrong = "test-only.rejected-token.this-one-was-reset-in-the-portal"
    bot = await tally(wait_ready=False, DISCORD_TOKEN=wrong)
    assert await bot.wait() == 2
    assert "Discord rejected DISCORD_TOKEN: reset the token in the Discord Developer Portal" in bot.log
    assert "Traceback" not in bot.log
    assert wrong not in bot.log


async def test_missing_privileged_intents_exit_with_a_developer_portal_hint(world, tally):
    world.fake.enabled_intents = 0  # the owner never switched them on
    bot = await tally(wait_ready=False)
    assert await bot.wait() == 2
    assert "turn on the Message Content and Server Members privileged intents" in bot.log
    assert "Traceback" not in bot.log


@pytest.mark.backends("sqlite")  # about the SQLite file itself
async def test_a_file_that_is_not_a_database_is_refused_and_kept(world, tally, tmp_path):
    (tmp_path / "data").mkdir()
    notes = tmp_path / "data" / "tally.db"
    notes.write_text("not a database")
    bot = await tally(wait_ready=False)
    assert await bot.wait() == 2
    assert "is not a SQLite database" in bot.log
    assert notes.read_text() == "not a database"


@pytest.mark.parametrize("compression", ["zstd-stream", "zlib-stream"])
async def test_gateway_works_with_either_transport_compression(world, tally, compression):
    await tally(TALLY_FAKE_COMPRESSION=compression)
    assert world.fake.compressions == [compression]
    await world.say(world.alice, "hi")
    post = await world.ask(world.alice, "!level")
    assert field(post, "Total XP") == "5"


async def test_the_bot_resumes_after_a_dropped_connection_and_misses_nothing(world, tally):
    await tally()
    await world.fake.drop_connection()
    await world.say(world.alice, "sent while the bot was away")
    await world.fake.wait_for(lambda: world.fake.resumes == 1, what="the bot to resume")
    post = await world.ask(world.alice, "!level")
    assert field(post, "Total XP") == "5"
    assert len(world.fake.identifies) == 1


async def test_logs_carry_ids_not_tokens_or_message_text_even_at_debug(world, tally):
    bot = await tally(LOG_LEVEL="DEBUG")
    await world.say(world.alice, "my very private words")
    await world.ask(world.alice, "!level")
    assert await bot.stop() == 0
    assert world.fake.token not in bot.log
    assert "my very private words" not in bot.log
    assert "DEBUG" in bot.log and "shut down cleanly" in bot.log


async def test_identify_asks_for_exactly_the_intents_tally_needs(world, tally):
    await tally()
    intents = world.fake.identifies[0]["intents"]
    guilds, members, guild_messages, dm_messages, message_content = 1, 1 << 1, 1 << 9, 1 << 12, 1 << 15
    assert intents == guilds | members | guild_messages | dm_messages | message_content


async def test_the_start_names_versions_settings_file_and_database_and_no_voice_noise(world, tally, storage, tmp_path):
    bot = await tally()
    assert await bot.stop() == 0
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert f"tally: Tally {version}, discord.py {discord.__version__}, Python {platform.python_version()}; " in bot.log
    assert f"settings from the environment only (no .env in {tmp_path})" in bot.log
    if storage.backend == "sqlite":
        assert f"using the SQLite file {tmp_path / 'data' / 'tally.db'}" in bot.log
    assert "voice will NOT be supported" not in bot.log
    (tmp_path / ".env").write_text("LOG_LEVEL=INFO\n", encoding="utf-8")
    bot = await tally()
    assert await bot.stop() == 0
    assert f"settings from {tmp_path / '.env'}" in bot.log


async def test_an_unreachable_discord_is_one_line_then_a_retry_until_it_answers(world, tally):
    port = int(world.fake.url.rsplit(":", 1)[1])
    await world.fake.stop()  # a network that is not up yet: connections refused
    bot = await tally(wait_ready=False)
    line = await bot.wait_for_log("cannot reach Discord")
    assert "(the connection failed: " in line and line.rstrip().endswith("trying again in 1 s")
    await bot.wait_for_log("trying again in 2 s")  # backing off
    await world.fake.start(port)
    await world.fake.wait_until_ready(timeout=15)
    assert "haven't earned any XP" in (await world.ask(world.alice, "!level")).content  # it came back by itself
    assert await bot.stop() == 0
    assert "Traceback" not in bot.log


def test_each_way_of_not_reaching_discord_is_named_in_a_few_words():
    key = ConnectionKey("discord.com", 443, True, True, None, None, None)
    no_dns = aiohttp.ClientConnectorDNSError(key, OSError(-3, "Temporary failure in name resolution"))
    bad_tls = aiohttp.ClientConnectorCertificateError(key, ssl.SSLCertVerificationError("certificate verify failed"))
    refused = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))
    assert unreachable(no_dns, 30) == "its name does not resolve: no DNS, or no network yet"
    assert unreachable(bad_tls, 30) == "the TLS handshake failed: check the clock and any proxy in between"
    assert unreachable(refused, 30) == "the connection failed: Connection refused"
    assert unreachable(TimeoutError(), 30) == "no answer within 30 s"


async def test_a_network_that_accepts_but_never_answers_is_given_up_on_and_tried_again(world, tally):
    world.fake.hang("GET", "/users/@me")  # the connection is let in; no answer ever comes back
    bot = await tally(wait_ready=False, CONNECT_TIMEOUT_SECONDS="1")
    line = await bot.wait_for_log("cannot reach Discord")
    assert line.rstrip().endswith("cannot reach Discord (no answer within 1 s); trying again in 1 s")
    await world.fake.wait_until_ready(timeout=15)
    assert world.fake.hung == 1
    assert "haven't earned any XP" in (await world.ask(world.alice, "!level")).content
    assert await bot.stop() == 0
    assert "Traceback" not in bot.log


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
async def test_a_signal_while_login_waits_on_a_silent_network_exits_0_without_a_traceback(world, tally, signal_name):
    world.fake.hang("GET", "/users/@me")
    bot = await tally(wait_ready=False)  # the default 30 s for one try: the signal comes first
    await world.fake.wait_for(lambda: world.fake.hung == 1, 20, "the login to be under way")
    assert await bot.stop(getattr(signal, signal_name)) == 0
    assert "stopped while connecting to Discord" in bot.log and "Traceback" not in bot.log


async def test_discords_5xx_during_login_is_one_line_then_a_retry(world, tally):
    world.fake.fail("GET", "/users/@me", 503)  # discord.py retries 500, 502 and 504 itself; 503 comes to Tally
    bot = await tally(wait_ready=False)
    line = await bot.wait_for_log("cannot reach Discord")
    assert line.rstrip().endswith("(Discord answered 503: its side is failing); trying again in 1 s")
    await world.fake.wait_until_ready(timeout=15)
    assert "haven't earned any XP" in (await world.ask(world.alice, "!level")).content
    assert await bot.stop() == 0
    assert "Traceback" not in bot.log


async def test_a_signal_while_discord_cannot_be_reached_exits_0_without_a_traceback(world, tally):
    await world.fake.stop()
    bot = await tally(wait_ready=False)
    await bot.wait_for_log("cannot reach Discord")
    assert await bot.stop() == 0
    assert "stopped while connecting to Discord" in bot.log and "Traceback" not in bot.log


async def test_files_other_users_could_read_are_named_once_and_tallys_own_are_private(world, tally, storage, tmp_path):
    env = tmp_path / ".env"
    env.write_text("LOG_LEVEL=INFO\n", encoding="utf-8")
    env.chmod(0o644)
    bot = await tally()
    assert await bot.stop() == 0
    assert bot.log.count("can be read by other users of this machine (mode 644) and it holds the token") == 1
    if storage.backend == "sqlite":
        assert (tmp_path / "data" / "tally.db").stat().st_mode & 0o777 == 0o600  # made by Tally: private
        assert "it holds every member's data" not in bot.log
        (tmp_path / "data" / "tally.db").chmod(0o644)
        env.chmod(0o600)
        bot = await tally()
        assert await bot.stop() == 0
        assert "(mode 644) and it holds every member's data: chmod 600" in bot.log


class _Cached:
    """Stands for a server's cached objects, which refer to each other (a channel to its server...)."""


def test_frozen_caches_stay_out_of_the_collectors_way_and_are_collected_once_dropped():
    server = _Cached()
    server.channel = _Cached()
    server.channel.guild = server  # a cycle, as in discord.py's caches
    gone = weakref.ref(server)
    try:
        freeze_caches(collect=False)
        assert gc.get_freeze_count() > 0
        del server
        gc.collect()
        assert gone() is not None  # frozen cycles are never collected: why dropping caches collects first
        freeze_caches(collect=True)
        assert gone() is None
        assert gc.get_freeze_count() > 0  # and what stands is frozen again
    finally:
        gc.unfreeze()  # the rest of this test process as it was


async def test_the_event_loop_gets_the_gil_back_every_millisecond_once_the_bot_is_set_up(world, tally):
    bot = await tally(TALLY_STALL_PROBE="1", XP_PER_MESSAGE="42")
    await bot.wait_for_log("switch interval: 0.005000")  # Python's own, while bot.py starts
    await bot.wait_for_log(f"switch interval: {GIL_SWITCH_SECONDS:.6f}")
    assert GIL_SWITCH_SECONDS == 0.001
    await world.say(world.alice, "hi")  # the probe and the setting change nothing members see
    post = await world.ask(world.alice, "!level")
    assert field(post, "Total XP") == "42"
