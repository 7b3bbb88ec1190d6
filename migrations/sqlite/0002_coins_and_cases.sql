-- Migration to schema version 2: coins (wallets and their ledger) and the
-- moderation log. Applied by db.py to a version-1 database, after a backup
-- copy; one transaction with its version bump. The tables are the same as in
-- schema.sql, which the start-up check compares the result against.

BEGIN;

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

-- Where each guild's new cases are also posted (!modlogchannel).
CREATE TABLE modlog_channels (
    guild_id   INTEGER PRIMARY KEY,
    channel_id INTEGER NOT NULL
);

PRAGMA user_version = 2;

COMMIT;
