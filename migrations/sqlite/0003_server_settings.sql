-- Migration to schema version 3: per-server settings, one row per setting
-- (guild_settings as in schema.sql). The prefix and the mod-log channel,
-- until now a column and a table of their own, become two settings of it.
-- Applied by db.py after a backup copy; one transaction with its version bump.
-- The old table is renamed away first, so the new one is created under its
-- own name (SQLite keeps a renamed table's CREATE statement with quotes).

BEGIN;

ALTER TABLE guild_settings RENAME TO guild_settings_v2;
CREATE TABLE guild_settings (
    guild_id INTEGER NOT NULL,
    name     TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    PRIMARY KEY (guild_id, name)
);
INSERT INTO guild_settings (guild_id, name, value)
    SELECT guild_id, 'prefix', prefix FROM guild_settings_v2;
INSERT INTO guild_settings (guild_id, name, value)
    SELECT guild_id, 'modlog', CAST(channel_id AS TEXT) FROM modlog_channels;
DROP TABLE guild_settings_v2;
DROP TABLE modlog_channels;

PRAGMA user_version = 3;

COMMIT;
