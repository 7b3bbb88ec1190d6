"""What both backends share about the schema: the numbered migrations and the start-up check."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from storage.records import DatabaseRefused

SCHEMA_VERSION = 5


def numbered_scripts(folder: Path) -> dict[int, str]:
    """The numbered migrations in ``folder``: ``{n: script}`` upgrades a version-n database to n + 1.

    ``NNNN_name.sql`` produces version NNNN. Each script is one transaction
    that ends by stamping the new version, so an upgrade and its version bump
    land together or not at all.
    """
    scripts = {}
    for path in sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        scripts[int(path.name[:4]) - 1] = path.read_text(encoding="utf-8")
    return scripts


class SchemaReport(NamedTuple):
    """The names the code relies on: tables with their columns, and indexes."""

    tables: dict[str, set[str]]  # table -> column names
    indexes: set[str]


def missing_from(expected: SchemaReport, found: SchemaReport) -> list[str]:
    """What ``found`` lacks of ``expected``, one phrase per table, column or index."""
    missing = []
    for table, columns in sorted(expected.tables.items()):
        if table not in found.tables:
            missing.append(f"table {table}")
            continue
        missing.extend(f"column {table}.{column}" for column in sorted(columns - found.tables[table]))
    missing.extend(f"index {index}" for index in sorted(expected.indexes - found.indexes))
    return missing


def refuse_unless_upgradable(
    where: str, version: int, found: SchemaReport, schema_version: int, migrations: dict[int, str], elsewhere: str
) -> None:
    """The refusals both backends make before writing anything, each a DatabaseRefused.

    ``where`` names the database; ``elsewhere`` says how to give Tally another one.
    """
    if version > schema_version:
        raise DatabaseRefused(
            f"{where} was written by a newer Tally (schema version {version}; this Tally knows up to "
            f"{schema_version}); upgrade Tally, or restore a backup made by this version"
        )
    if version == 0 and (found.tables or found.indexes):
        raise DatabaseRefused(
            f"{where} holds tables Tally did not create ({', '.join(sorted(found.tables)) or 'indexes'}); {elsewhere}"
        )
    missing_steps = [n for n in range(version, schema_version) if version and n not in migrations]
    if missing_steps:
        raise DatabaseRefused(
            f"{where} has schema version {version} and this Tally has no upgrade from version "
            f"{missing_steps[0]}; restore a backup, or {elsewhere}"
        )


def refuse_unless_current(where: str, version: int, schema_version: int) -> None:
    """For tools that only read (copy-data's source): nothing to create or upgrade, or a refusal."""
    if version == 0:
        raise DatabaseRefused(f"{where} holds no Tally data (no schema version): nothing to copy")
    if version != schema_version:
        raise DatabaseRefused(
            f"{where} is at schema version {version}, this Tally's is {schema_version}: start this Tally on it "
            "once (it upgrades the database, keeping a backup), stop it, then copy"
        )


def refuse_unless_complete(
    where: str, version: int, schema_version: int, expected: SchemaReport, found: SchemaReport
) -> None:
    """After creating or upgrading: the version must be this Tally's and nothing the code relies on missing."""
    if version != schema_version:
        raise DatabaseRefused(f"{where} is at schema version {version}, expected {schema_version}")
    missing = missing_from(expected, found)
    if missing:
        raise DatabaseRefused(
            f"{where} claims schema version {version} but lacks {', '.join(missing)}; restore a backup"
        )
