"""Tally's storage, behind the one ``Database`` API in db.py.

  records.py    the values and errors the store hands out (no SQL)
  schema.py     the schema version, numbered migrations and the start-up check's names
  sqlite.py     the SQLite file: opening, checks, migrations, backups, one writer
  postgres.py   the PostgreSQL pool: opening, checks, migrations, retried writes
  levels.py     the SQL for XP
  settings.py   the SQL for per-guild settings (prefix, mod-log channel)
  coins.py      the SQL for coins and the ledger
  cases.py      the SQL for moderation cases

The SQL of each concern is written once, with ``$1`` placeholders, against a
connection that offers four calls on either backend (``execute``, ``fetch``,
``fetchrow``, ``fetchval``); where the dialects must differ, both forms stand
side by side, chosen by ``conn.dialect``. A third backend (MariaDB, say)
would be one more lifecycle module and one more form of those few statements.
"""
