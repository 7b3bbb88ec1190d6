-- Migration to schema version 4: the state of a running !rewards sync, so a
-- restart resumes it (reward_syncs as in schema.sql). Applied by db.py after
-- a backup copy; one transaction with its version bump.

BEGIN;

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

PRAGMA user_version = 4;

COMMIT;
