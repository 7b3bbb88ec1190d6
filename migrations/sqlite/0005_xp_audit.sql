-- Migration to schema version 5: the XP audit log (xp_audit as in
-- schema.sql). Applied by db.py after a backup copy; one transaction with
-- its version bump.

BEGIN;

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
