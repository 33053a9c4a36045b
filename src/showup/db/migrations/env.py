"""Alembic environment. Migrations run on a connection handed in by ``db.migrate``."""

from __future__ import annotations

from alembic import context

from showup.db import bot_models as _bot_models  # noqa: F401  (registers tables)
from showup.db import channel_models as _channel_models  # noqa: F401  (registers tables)
from showup.db import webhook_models as _webhook_models  # noqa: F401  (registers tables)
from showup.db.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `showup migrate` (showup.db.migrate)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
