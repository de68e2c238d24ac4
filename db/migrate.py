"""Schema migrations applied by `PRAGMA user_version`.

Each `db/migrations/NNNN_name.sql` file moves the schema from version NNNN-1 to NNNN.
A migration runs inside one `BEGIN IMMEDIATE` transaction together with the
`user_version` bump (both live in the database header, so they commit or roll back
together): a crash mid-migration leaves the previous schema intact, and two processes
opening a fresh workspace at once cannot both apply the same step.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

# "AmbS" in ASCII: marks the file as an ambiscope workspace (PRAGMA application_id).
APPLICATION_ID = 0x416D6253

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """All packaged migrations in version order; versions must be 1..N without gaps."""
    folder = resources.files("ambiscope.db") / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        raise RuntimeError(f"db/migrations is not numbered 1..{len(found)} without gaps")
    return found


def latest_version() -> int:
    return len(load_migrations())


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (triggers' BEGIN...END kept whole).

    `executescript` would COMMIT our open transaction first, so statements are run one
    by one inside it instead.
    """
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if not _only_comments(buffer):
                statements.append(buffer.strip())
            buffer = ""
    if not _only_comments(buffer):
        raise ValueError(f"incomplete SQL statement at end of migration: {buffer.strip()[:60]}")
    return statements


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Bring the schema up to the latest version; returns the version reached.

    The connection must be in autocommit mode (isolation_level=None) with foreign keys
    off: SQLite's procedure for changing a table (create the new one, copy, drop the old,
    rename) would otherwise cascade the drop into every referencing row. The references
    are checked once, before the commit, instead.
    """
    migrations = load_migrations()
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        for migration in migrations:
            if migration.version <= current:
                continue
            for statement in split_statements(migration.sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {migration.version:d}")
            current = migration.version
        broken = conn.execute("PRAGMA foreign_key_check").fetchone()
        if broken is not None:
            raise RuntimeError(f"migration left a dangling reference in table {broken[0]}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite rolls back by itself on a full disk or I/O error
            conn.execute("ROLLBACK")
        raise
    return current
