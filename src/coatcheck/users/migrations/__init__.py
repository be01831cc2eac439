"""Alembic migrations of the user store's tables, shipped inside the package.

No ``alembic.ini`` is needed: :func:`alembic_config` builds the configuration
in code and hands Alembic the caller's connection. The revision is kept in a
table of coatcheck's own, :data:`VERSION_TABLE`, so that an application with
an Alembic of its own in the same database is not disturbed.

Everything here takes a connection already in a transaction: serialising
migrations across processes is the caller's job (:meth:`UserStore.upgrade_schema`).
Within a process, :func:`upgrade` runs one at a time, whatever the database.

To write the next revision after changing :mod:`coatcheck.users.models`,
compare the models with a database at head, then review the file (and run
``ruff format`` on it)::

    store = UserStore("sqlite:///dev.db")
    store.create_schema()
    with store.engine.begin() as connection:
        command.revision(alembic_config(connection), "add x", autogenerate=True, rev_id="0002")
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, inspect

from ...core.errors import ConfigurationError

__all__ = [
    "BASELINE_REVISION",
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "head_revision",
    "upgrade",
]

#: Where coatcheck records the revision of its tables.
VERSION_TABLE = "coatcheck_alembic_version"
#: The revision whose schema ``metadata.create_all`` made before migrations existed.
BASELINE_REVISION = "0001"
#: The tables of :data:`BASELINE_REVISION`.
_BASELINE_TABLES = ("coatcheck_users", "coatcheck_audit_events")
_LOCATION = Path(__file__).parent
# Alembic's ``context`` and ``op`` are module-wide proxies: two migrations running
# in threads of one process, even on different databases, would trample each other.
_PROCESS_LOCK = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    """Return an Alembic configuration of these migrations.

    :param connection: what ``env.py`` migrates, passed in
        ``config.attributes["connection"]``. Without one, only offline (``--sql``)
        runs work, with the URL in the ``sqlalchemy.url`` option.
    """
    config = Config()
    # The option goes through ConfigParser interpolation: a % in the path must be doubled.
    config.set_main_option("script_location", str(_LOCATION).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """Return the newest revision of these migrations."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """Return the revision the database is at, or ``None`` if it has none."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Migrate the database to ``revision``.

    Tables made by ``metadata.create_all`` before migrations existed are
    adopted: recorded as :data:`BASELINE_REVISION`, not made again.

    :raise ConfigurationError: if the database holds only some of the old
        tables, or is at a revision this version of coatcheck does not know.
    """
    config = alembic_config(connection)
    with _PROCESS_LOCK:
        _adopt_create_all_tables(connection, config)
        try:
            command.upgrade(config, revision)
        except CommandError as exc:
            raise ConfigurationError(
                f"cannot migrate the user database to {revision!r} (a newer coatcheck may "
                f"have migrated it; this one knows up to {head_revision()}): {exc}"
            ) from exc


def _adopt_create_all_tables(connection: Connection, config: Config) -> None:
    """Record tables made before migrations existed as :data:`BASELINE_REVISION`."""
    inspector = inspect(connection)
    if inspector.has_table(VERSION_TABLE):
        return
    present = [name for name in _BASELINE_TABLES if inspector.has_table(name)]
    if len(present) == len(_BASELINE_TABLES):
        command.stamp(config, BASELINE_REVISION)
    elif present:
        raise ConfigurationError(
            f"the user database has {', '.join(present)} but not all of "
            f"{', '.join(_BASELINE_TABLES)}, and no {VERSION_TABLE}: it was left "
            "half-made; drop coatcheck's tables or finish them by hand"
        )
