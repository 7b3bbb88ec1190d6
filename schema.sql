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

-- The settings a guild changed from the defaults in .env, one row each: the
-- setting's name (as !settings shows it) and its value as text, which
-- server_settings.py reads and checks. A guild without rows uses the defaults.
CREATE TABLE guild_settings (
    guild_id INTEGER NOT NULL,
    name     TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (guild_id, name)
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

-- Coins: one wallet per member who ever held coins in a guild.
CREATE TABLE wallets (
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    coins      INTEGER NOT NULL DEFAULT 0 CHECK (coins >= 0),  -- whole coins; never below zero
    last_daily INTEGER,                                         -- when !daily was last claimed
    name       TEXT    NOT NULL DEFAULT '',                     -- last known display name
    PRIMARY KEY (guild_id, user_id)
) WITHOUT ROWID;

-- The richest list's order: most coins first, ties by the lower user ID.
CREATE INDEX wallets_by_coins ON wallets (guild_id, coins DESC, user_id);

-- Every coin movement, written in the same transaction as the balance change,
-- so the ledger explains every balance. from_id is NULL for coins created
-- (daily, level-up, admin give), to_id is NULL for coins destroyed (admin take).
CREATE TABLE ledger (
    id         INTEGER PRIMARY KEY,
    guild_id   INTEGER NOT NULL,
    from_id    INTEGER,
    to_id      INTEGER,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    kind       TEXT    NOT NULL CHECK (kind IN ('daily', 'level_up', 'transfer', 'give', 'take', 'set')),
    actor_id   INTEGER NOT NULL,   -- who caused it: the member, or the admin
    reason     TEXT,
    created_at INTEGER NOT NULL,
    CHECK (from_id IS NOT NULL OR to_id IS NOT NULL)
);
CREATE INDEX ledger_from ON ledger (guild_id, from_id, id);
CREATE INDEX ledger_to ON ledger (guild_id, to_id, id);

-- Moderation cases, numbered 1, 2, 3 ... per guild.
CREATE TABLE cases (
    guild_id     INTEGER NOT NULL,
    number       INTEGER NOT NULL,
    action       TEXT    NOT NULL CHECK (action IN ('warn', 'kick', 'ban')),
    target_id    INTEGER NOT NULL,
    target_name  TEXT    NOT NULL,
    moderator_id INTEGER NOT NULL,
    reason       TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (guild_id, number)
) WITHOUT ROWID;
CREATE INDEX cases_by_target ON cases (guild_id, target_id, number DESC);

-- Earlier reasons of a case, kept when !reason corrects one.
CREATE TABLE case_reasons (
    guild_id     INTEGER NOT NULL,
    number       INTEGER NOT NULL,
    reason       TEXT,
    moderator_id INTEGER NOT NULL,   -- who replaced it
    replaced_at  INTEGER NOT NULL,
    FOREIGN KEY (guild_id, number) REFERENCES cases (guild_id, number)
);
CREATE INDEX case_reasons_by_case ON case_reasons (guild_id, number);

-- A running !rewards sync, one per guild: where its progress message is and
-- how far it got (members go in user ID order), so a restart resumes it.
CREATE TABLE reward_syncs (
    guild_id   INTEGER PRIMARY KEY,
    channel_id INTEGER NOT NULL,             -- where !rewards sync was asked for
    message_id INTEGER,                      -- its progress message, edited in place
    started_by INTEGER NOT NULL,
    after_user INTEGER NOT NULL DEFAULT 0,   -- the last member done
    done       INTEGER NOT NULL DEFAULT 0,   -- members checked
    changed    INTEGER NOT NULL DEFAULT 0,   -- members whose roles changed
    failed     INTEGER NOT NULL DEFAULT 0,   -- members Discord would not change
    started_at INTEGER NOT NULL
);

-- Every XP change that is not chat (admin commands, resets, imports), one row
-- per member changed, numbered 1, 2, 3 ... per guild: !xp history lists them,
-- !xp undo <number> reverts one. actor_id is who made it (NULL: the command
-- line); undone_by is the number of the change that reverted it.
CREATE TABLE xp_audit (
    guild_id   INTEGER NOT NULL,
    number     INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    actor_id   INTEGER,
    kind       TEXT    NOT NULL CHECK (kind IN ('give', 'take', 'set', 'reset', 'reset-server', 'undo', 'import')),
    xp_before  INTEGER NOT NULL CHECK (xp_before >= 0),
    xp_after   INTEGER NOT NULL CHECK (xp_after >= 0),
    reason     TEXT,
    created_at INTEGER NOT NULL,
    undone_by  INTEGER,
    PRIMARY KEY (guild_id, number)
) WITHOUT ROWID;
CREATE INDEX xp_audit_by_member ON xp_audit (guild_id, user_id, number DESC);

PRAGMA user_version = 5;

COMMIT;
