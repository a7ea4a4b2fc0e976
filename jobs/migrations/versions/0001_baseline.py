"""Baseline: every table of the service, and the adoption of a SQLite file an earlier release made.

Releases before this one kept no version: they created their tables on open and added columns one by one. Such a
file is upgraded here to the baseline (missing tables created, missing columns added with their defaults, missing
indexes built, ``is_current`` settled over every series when it is new), so from here on every change is a revision.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobs.migrations.baseline import SERIES_KEY, metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Settles every series at once: only for a file whose tasks carry no is_current yet.
_MARK_CURRENT_EVERYWHERE = f"""
UPDATE tasks SET is_current = 1 WHERE task_id IN (
  SELECT task_id FROM (
    SELECT task_id, ROW_NUMBER() OVER (PARTITION BY {", ".join(SERIES_KEY)}
                                       ORDER BY create_time DESC, task_id DESC) AS newest_first
    FROM tasks) AS ranked
  WHERE newest_first = 1)
"""


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    present = set(inspector.get_table_names())
    settle_current = False
    for table in metadata.sorted_tables:
        if table.name not in present:
            table.create(bind)
            continue
        have = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                op.add_column(table.name, column._copy())
                settle_current |= (table.name, column.name) == ("tasks", "is_current")
        for index in table.indexes:
            index.create(bind, checkfirst=True)
    if settle_current:
        op.execute(_MARK_CURRENT_EVERYWHERE)


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: restore a backup instead")
