-- Version 1 of Tally's schema on PostgreSQL (the foundation: prefixes and XP),
-- kept so the tests can upgrade a version-1 database with the real migration
-- (migrations/postgres/0002_coins_and_cases.sql) and compare it with a fresh one.
--
-- Conventions (as in schema.sql)
--   * Discord snowflakes are BIGINT; coins are BIGINT, whole coins.
--   * Per-member rows are keyed by (guild_id, user_id): everything is per guild.
--   * Timestamps are whole seconds since the Unix epoch (BIGINT), in UTC: one
--     convention on both backends, so copy-data moves them as they are.
--   * A member's level is never stored: it is derived from XP by the level curve.

-- The schema version (SQLite keeps it in PRAGMA user_version). One row.
CREATE TABLE tally_version (
    version INTEGER NOT NULL
);
INSERT INTO tally_version (version) VALUES (1);

-- Settings a guild changed from the defaults in .env. A guild without a row
-- uses the defaults.
CREATE TABLE guild_settings (
    guild_id BIGINT PRIMARY KEY,
    prefix   TEXT   NOT NULL CHECK (length(prefix) BETWEEN 1 AND 5)
);

-- One row per member who has earned XP in a guild.
CREATE TABLE members (
    guild_id   BIGINT NOT NULL,
    user_id    BIGINT NOT NULL,
    xp         BIGINT NOT NULL DEFAULT 0 CHECK (xp >= 0),
    name       TEXT   NOT NULL DEFAULT '',  -- last known display name
    first_seen BIGINT NOT NULL,             -- when Tally first saw the member chatting here
    PRIMARY KEY (guild_id, user_id)
);
-- No index on xp, on purpose: ranks and pages come from each guild's board in memory.

