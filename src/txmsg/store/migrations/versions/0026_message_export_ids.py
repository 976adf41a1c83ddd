"""Message export dataset ids are never reused: the SQLite table gets AUTOINCREMENT.

`message_export.id` is the export flows' watermark. On SQLite a plain INTEGER PRIMARY KEY takes
the highest id left plus one, so once the retention purge had emptied the table new records got
ids at or below every flow's watermark and were never exported (runs succeeded with 0 records).
The table is copied whole, and its sequence starts above the highest id it held, any flow's
watermark and any run's range: no id below them is handed out again. PostgreSQL's sequence
never goes back: unchanged.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def _recreate(autoincrement: bool) -> None:
    with op.batch_alter_table(
        "message_export", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    _recreate(True)
    floor = conn.exec_driver_sql(
        "SELECT max(coalesce((SELECT max(id) FROM message_export), 0),"
        " coalesce((SELECT max(watermark) FROM export_flows), 0),"
        " coalesce((SELECT max(to_id) FROM export_runs), 0))"
    ).scalar_one()
    # The copy's inserts made the table's row in sqlite_sequence (none when it was empty).
    conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = 'message_export'")
    conn.exec_driver_sql(
        "INSERT INTO sqlite_sequence (name, seq) VALUES ('message_export', ?)", (int(floor),)
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate(False)
