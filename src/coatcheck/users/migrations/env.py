"""Alembic's environment for the user store's migrations.

Online runs use the connection in ``config.attributes["connection"]`` (see
:func:`coatcheck.users.migrations.alembic_config`) inside the caller's
transaction; offline runs (``--sql``) use the ``sqlalchemy.url`` option.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from coatcheck.users.migrations import VERSION_TABLE
from coatcheck.users.models import Base


def run_migrations_offline() -> None:
    """Write the migrations' SQL instead of running it."""
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the connection handed over by the caller."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "coatcheck's migrations run on a connection passed in "
            "config.attributes['connection']; use UserStore.upgrade_schema()"
        )
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        # SQLite alters a table by copying it: let op.batch_alter_table do so.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
