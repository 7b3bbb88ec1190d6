"""Settings: defaults, validation messages that name the variable, and no token leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings, prefix_problem

TOKEN = "test-only.not-a-real-token.secret-value-that-must-never-be-printed"


def test_defaults_follow_the_seed_tutorial():
    settings = load_settings({"DISCORD_TOKEN": TOKEN})
    assert settings.database_path == Path("data/tally.db")
    assert settings.default_prefix == "!"
    assert settings.xp_per_message == 5
    assert settings.xp_cooldown_seconds == 60
    assert settings.level_curve == "linear"
    assert settings.log_level == "INFO"
    assert settings.xp_flush_seconds == 1.0


def test_every_variable_is_read():
    settings = load_settings(
        {
            "DISCORD_TOKEN": TOKEN,
            "DATABASE_PATH": "/srv/tally/x.db",
            "DEFAULT_PREFIX": "?",
            "XP_PER_MESSAGE": "7",
            "XP_COOLDOWN_SECONDS": "0",
            "XP_FLUSH_SECONDS": "2.5",
            "LEVEL_CURVE": "MEE6",
            "LOG_LEVEL": "debug",
            "SHUTDOWN_SAVE_SECONDS": "45",
        }
    )
    assert (settings.database_path, settings.default_prefix, settings.xp_per_message) == (
        Path("/srv/tally/x.db"),
        "?",
        7,
    )
    assert (settings.xp_cooldown_seconds, settings.xp_flush_seconds) == (0, 2.5)
    assert (settings.level_curve, settings.log_level) == ("mee6", "DEBUG")
    assert settings.shutdown_save_seconds == 45.0


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("XP_PER_MESSAGE", "abc", "XP_PER_MESSAGE must be a whole number from 1 to 1000"),
        ("XP_PER_MESSAGE", "0", "XP_PER_MESSAGE must be a whole number from 1 to 1000"),
        ("XP_PER_MESSAGE", "2.5", "XP_PER_MESSAGE must be a whole number"),
        ("XP_COOLDOWN_SECONDS", "-1", "XP_COOLDOWN_SECONDS must be a whole number from 0 to 86400"),
        ("XP_FLUSH_SECONDS", "nan", "XP_FLUSH_SECONDS must be a number of seconds"),
        ("LEVEL_CURVE", "exponential", "LEVEL_CURVE must be one of linear, mee6"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR"),
        ("DEFAULT_PREFIX", "/", "DEFAULT_PREFIX is not a valid prefix"),
        ("DEFAULT_PREFIX", "toolong", "DEFAULT_PREFIX is not a valid prefix"),
        ("DEFAULT_PREFIX", "!\u200b", "DEFAULT_PREFIX is not a valid prefix: a prefix cannot contain control"),
        ("SHUTDOWN_SAVE_SECONDS", "0", "SHUTDOWN_SAVE_SECONDS must be a number of seconds from 1 to 600"),
    ],
)
def test_a_malformed_value_is_refused_with_one_line_naming_the_variable(name, value, expected):
    with pytest.raises(ConfigError) as refused:
        load_settings({"DISCORD_TOKEN": TOKEN, name: value})
    message = str(refused.value)
    assert message.startswith(expected)
    assert "\n" not in message
    assert TOKEN not in message


def test_a_missing_token_says_where_to_get_one():
    with pytest.raises(ConfigError, match="DISCORD_TOKEN is missing.*Developer Portal"):
        load_settings({})


def test_a_malformed_token_is_refused_without_printing_it():
    bad = "has spaces in it but is otherwise long enough"
    with pytest.raises(ConfigError) as refused:
        load_settings({"DISCORD_TOKEN": bad})
    assert "DISCORD_TOKEN" in str(refused.value)
    assert bad not in str(refused.value)


def test_database_path_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="DATABASE_PATH must name a file"):
        load_settings({"DISCORD_TOKEN": TOKEN, "DATABASE_PATH": str(tmp_path)})


def test_settings_repr_never_shows_the_token():
    assert TOKEN not in repr(load_settings({"DISCORD_TOKEN": TOKEN}))


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        ("", "at least 1 character"),
        ("abcdef", "at most 5 characters"),
        ("a b", "spaces"),
        ("a\tb", "spaces"),
        ("`", "backticks"),
        ("<@1>", "mention"),
        ("@", "mention"),
        ("/x", "cannot start with /"),
        ("\x00", "control or invisible"),
        ("a\u200d", "control or invisible"),
        ("\u2800", "control or invisible"),
    ],
)
def test_prefix_rules_give_a_reason(prefix, reason):
    assert reason in prefix_problem(prefix)


@pytest.mark.parametrize("prefix", ["!", "?", "t!", "$$", "';--", "12345", "é"])
def test_good_prefixes_pass(prefix):
    assert prefix_problem(prefix) is None
