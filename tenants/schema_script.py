"""Build a new tenant schema from one recorded script instead of running every migration.

Running the tenant migrations one by one through Alembic costs most of a provisioning
(script loading, one migration context, SQLAlchemy compiling each operation). Every new
schema runs the very same statements, so the first provisioning in a process runs the
migrations once in a throw-away template schema inside a savepoint, records each
statement the driver was sent (with its parameters), and rolls the savepoint back. Later
schemas replay that script with the template's name replaced by theirs, in the caller's
transaction, Alembic's own `alembic_version` statements included: the new schema is
stamped at the head it was built to.

The script is keyed on a digest of the migration files, so a new revision (or an edited
one) records a new script, stamped at the heads Alembic names then. The tenant migrations are plain DDL
and SQL with no Python branching on what the database holds, which is what makes a
recording valid for every new schema; `tests/tenancy/test_schema_script.py` compares a
replayed schema with a migrated one catalogue entry by catalogue entry.
`TENANT_SCHEMA_SCRIPT=0` turns the replay off (every schema is migrated by Alembic).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.engine import Connection

from tenants import migrate

# A recorded name is swapped textually; both names are plain lowercase identifiers, so the
# swap is the same inside a quoted identifier, a string literal or a bare name.
PLAIN_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
TEMPLATE_PREFIX = "upzento_schema_template_"


@dataclass(frozen=True)
class SchemaScript:
    """The statements that build a tenant schema at `heads`, recorded in schema `template`."""

    key: str
    heads: str
    template: str
    statements: tuple[tuple[str, object, bool], ...]  # as recorded: (SQL, driver parameters, executemany)

    def steps(self) -> list[tuple[str, object, bool]]:
        """The statements with each run of parameterless ones joined into one text, sent in one
        round trip. They were sent with empty parameters, so the driver had turned `%%` into `%`;
        sent without parameters the text goes as it is, so that is done here."""
        out: list[tuple[str, object, bool]] = []
        batch: list[str] = []
        for statement, parameters, many in self.statements:
            if not many and parameters is not None and len(parameters) == 0:
                batch.append(statement.replace("%%", "%"))
                continue
            if batch:
                out.append((";\n".join(batch), None, False))
                batch = []
            out.append((statement, parameters, many))
        if batch:
            out.append((";\n".join(batch), None, False))
        return out


_lock = threading.Lock()
_scripts: dict[str, "_Compiled"] = {}


def enabled() -> bool:
    return os.environ.get("TENANT_SCHEMA_SCRIPT", "1").strip().lower() not in ("0", "false", "no", "off")


def migrations_key() -> str:
    """A digest of every tenant migration file and env.py (and of where they are): changes with any
    revision added, removed or edited. Reading the files is cheap; asking Alembic for the heads
    loads every revision module (~30 ms), so that is done only when a script is recorded."""
    folder = migrate.MIGRATIONS / "tenant"
    digest = hashlib.sha256(str(folder).encode())
    for path in sorted([folder / "env.py", *(folder / "versions").glob("*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def record(connection: Connection) -> SchemaScript:
    """Run the tenant migrations in a template schema inside a savepoint, keep the statements, roll back."""
    key = migrations_key()
    template = TEMPLATE_PREFIX + secrets.token_hex(4)
    statements: list[tuple[str, object, bool]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters, executemany))

    savepoint = connection.begin_nested()
    try:
        connection.exec_driver_sql(f'CREATE SCHEMA "{template}"')
        connection.exec_driver_sql(f'SET LOCAL search_path TO "{template}", public')
        event.listen(connection, "before_cursor_execute", keep)
        try:
            migrate._upgrade(connection, "tenant", template)
        finally:
            event.remove(connection, "before_cursor_execute", keep)
    finally:
        savepoint.rollback()  # the template schema and the SET LOCAL go with it
    return SchemaScript(key, migrate.head_revision("tenant"), template, tuple(statements))


@dataclass(frozen=True)
class _Compiled:
    script: SchemaScript
    steps: tuple[tuple[str, object, bool], ...]


def script_for(connection: Connection) -> SchemaScript:
    """The script of the current migrations, recorded on `connection` the first time it is asked for."""
    return _compiled(connection).script


def _compiled(connection: Connection) -> _Compiled:
    key = migrations_key()
    compiled = _scripts.get(key)
    if compiled is None:
        with _lock:
            compiled = _scripts.get(key)
            if compiled is None:
                script = record(connection)
                compiled = _Compiled(script, tuple(script.steps()))
                _scripts.clear()  # only the current migrations' script is worth keeping
                _scripts[key] = compiled
    return compiled


def _swap(value, template: str, schema: str):
    if isinstance(value, str):
        return value.replace(template, schema)
    if isinstance(value, dict):
        return {k: _swap(v, template, schema) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_swap(v, template, schema) for v in value)
    return value


def build_schema(connection: Connection, schema: str) -> str:
    """Create tenant schema `schema` (new, not existing) at the newest revision inside the
    caller's transaction; returns the revision. Replays the recorded script, or runs Alembic
    when the replay is turned off or the name is not a plain identifier."""
    if not enabled() or not PLAIN_IDENTIFIER.match(schema):
        return migrate.migrate_schema(connection, schema)
    compiled = _compiled(connection)
    template = compiled.script.template
    connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    connection.exec_driver_sql(f'SET LOCAL search_path TO "{schema}", public')
    cursor = connection.connection.driver_connection.cursor()
    try:
        for statement, parameters, many in compiled.steps:
            statement = statement.replace(template, schema)
            parameters = _swap(parameters, template, schema)
            if many:
                cursor.executemany(statement, parameters)
            else:
                cursor.execute(statement, parameters)
    finally:
        cursor.close()
    connection.exec_driver_sql("SET LOCAL search_path TO public")
    return compiled.script.heads
