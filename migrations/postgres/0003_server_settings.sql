-- Migration to schema version 3 on PostgreSQL: per-server settings, one row
-- per setting (guild_settings as in schema_postgres.sql). The prefix and the
-- mod-log channel, until now a column and a table of their own, become two
-- settings of it. Run by db.py in one transaction with its version bump.

CREATE TABLE guild_settings_by_name (
    guild_id BIGINT NOT NULL,
    name     TEXT   NOT NULL,
    value    TEXT   NOT NULL,
    PRIMARY KEY (guild_id, name)
);
INSERT INTO guild_settings_by_name (guild_id, name, value)
    SELECT guild_id, 'prefix', prefix FROM guild_settings;
INSERT INTO guild_settings_by_name (guild_id, name, value)
    SELECT guild_id, 'modlog', channel_id::text FROM modlog_channels;
DROP TABLE guild_settings;
DROP TABLE modlog_channels;
ALTER TABLE guild_settings_by_name RENAME TO guild_settings;
ALTER INDEX guild_settings_by_name_pkey RENAME TO guild_settings_pkey;

UPDATE tally_version SET version = 3;
