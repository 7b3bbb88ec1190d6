-- Migration to schema version 4 on PostgreSQL: the state of a running
-- !rewards sync, so a restart resumes it (reward_syncs as in
-- schema_postgres.sql). Run by db.py in one transaction with its version bump.

-- A running !rewards sync, one per guild: where its progress message is and
-- how far it got (members go in user ID order), so a restart resumes it.
CREATE TABLE reward_syncs (
    guild_id   BIGINT PRIMARY KEY,
    channel_id BIGINT  NOT NULL,             -- where !rewards sync was asked for
    message_id BIGINT,                       -- its progress message, edited in place
    started_by BIGINT  NOT NULL,
    after_user BIGINT  NOT NULL DEFAULT 0,   -- the last member done
    done       INTEGER NOT NULL DEFAULT 0,   -- members checked
    changed    INTEGER NOT NULL DEFAULT 0,   -- members whose roles changed
    failed     INTEGER NOT NULL DEFAULT 0,   -- members Discord would not change
    started_at BIGINT  NOT NULL
);

UPDATE tally_version SET version = 4;
