-- Migration to schema version 5 on PostgreSQL: the XP audit log (xp_audit as
-- in schema_postgres.sql). Run by db.py in one transaction with its version bump.

-- Every XP change that is not chat (admin commands, resets, imports), one row
-- per member changed, numbered 1, 2, 3 ... per guild: !xp history lists them,
-- !xp undo <number> reverts one. actor_id is who made it (NULL: the command
-- line); undone_by is the number of the change that reverted it.
CREATE TABLE xp_audit (
    guild_id   BIGINT  NOT NULL,
    number     BIGINT  NOT NULL,
    user_id    BIGINT  NOT NULL,
    actor_id   BIGINT,
    kind       TEXT    NOT NULL CHECK (kind IN ('give', 'take', 'set', 'reset', 'reset-server', 'undo', 'import')),
    xp_before  BIGINT  NOT NULL CHECK (xp_before >= 0),
    xp_after   BIGINT  NOT NULL CHECK (xp_after >= 0),
    reason     TEXT,
    created_at BIGINT  NOT NULL,
    undone_by  BIGINT,
    PRIMARY KEY (guild_id, number)
);
CREATE INDEX xp_audit_by_member ON xp_audit (guild_id, user_id, number DESC);

UPDATE tally_version SET version = 5;
