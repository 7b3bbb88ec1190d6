-- Tally's database schema: the whole current schema, applied as is to a new
-- database file. An existing file is upgraded by the numbered migrations in
-- db.py instead, and checked against this file at every start.
--
-- Conventions
--   * Discord snowflakes (guild, user, channel IDs) are INTEGER.
--   * Per-member rows are keyed by (guild_id, user_id): everything is per guild.
--   * Timestamps are whole seconds since the Unix epoch, in UTC.
--   * A member's level is never stored: it is derived from XP by the level curve.
--
-- The script is one transaction, and the schema version is set inside it, so
-- a crash while creating a database leaves either nothing or everything.

BEGIN;

-- Settings a guild changed from the defaults in .env. A guild without a row
-- uses the defaults.
CREATE TABLE guild_settings (
    guild_id INTEGER PRIMARY KEY,
    prefix   TEXT    NOT NULL CHECK (length(prefix) BETWEEN 1 AND 5)
);

-- One row per member who has earned XP in a guild.
CREATE TABLE members (
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    xp         INTEGER NOT NULL DEFAULT 0 CHECK (xp >= 0),
    -- Last known display name, so the leaderboard can name members who left.
    name       TEXT    NOT NULL DEFAULT '',
    -- When Tally first saw the member chatting in this guild.
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id)
) WITHOUT ROWID;  -- the key is the row's address: one B-tree less to update per XP flush

-- No index on xp, on purpose: ranks and leaderboard pages are answered by each
-- guild's board in memory (xp.py), read once through the primary key
-- (guild_id first). An xp index would serve no query and double the cost of
-- every XP flush, since each flush moves every flushed member within it.

PRAGMA user_version = 1;

COMMIT;
