"""tickets: earliest_due_at (the earliest deadline still to meet), and indexes
for the digest's overdue / due-soon ranges and its per-office open counts;
on PostgreSQL, the units' contact and leader foreign keys 0001 left out

0001 declared them use_alter (units and persons refer to each other) and
create_table leaves such constraints to a later ALTER, which PostgreSQL never
got; SQLite has them inline.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 04:40:00
"""
import sqlalchemy as sa
from alembic import op

import models.base

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# The deadlines each open status still has to meet, as of this revision
# (models.workflow.outstanding_deadlines); feedback only until the first one.
_STAGES = {
    "reported": ("dispatch_due_at",),
    "returned": ("dispatch_due_at",),
    "dispatched": ("ack_due_at", "feedback_due_at", "resolve_due_at"),
    "acknowledged": ("feedback_due_at", "resolve_due_at"),
    "in_progress": ("feedback_due_at", "resolve_due_at"),
    "resolved": ("confirm_due_at",),
}
_DUE_COLUMNS = ("dispatch_due_at", "ack_due_at", "feedback_due_at", "resolve_due_at", "confirm_due_at")


def _tickets() -> sa.Table:
    time = models.base.UTCDateTime(timezone=True)
    return sa.table(
        "tickets", sa.column("id", sa.Integer()), sa.column("status", sa.String()),
        sa.column("is_open", sa.Boolean()), sa.column("first_feedback_at", time),
        *(sa.column(name, time) for name in _DUE_COLUMNS), sa.column("earliest_due_at", time),
    )


def _earliest(row) -> object:
    stages = [s for s in _STAGES.get(row.status, ()) if s != "feedback_due_at" or row.first_feedback_at is None]
    dues = [getattr(row, s) for s in stages if getattr(row, s) is not None]
    return min(dues, default=None)


def _backfill() -> None:
    tickets = _tickets()
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(tickets.c.id, tickets.c.status, tickets.c.first_feedback_at,
                  *(tickets.c[name] for name in _DUE_COLUMNS))
        .where(tickets.c.is_open.is_(True))
    ).all()
    values = [{"ticket_id": row.id, "due": _earliest(row)} for row in rows]
    values = [v for v in values if v["due"] is not None]
    if values:
        connection.execute(
            tickets.update().where(tickets.c.id == sa.bindparam("ticket_id")).values(earliest_due_at=sa.bindparam("due")),
            values,
        )


_UNIT_PEOPLE = (("fk_units_contact_id_persons", "contact_id"), ("fk_units_leader_id_persons", "leader_id"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for name, column in _UNIT_PEOPLE:
            op.create_foreign_key(name, "units", "persons", [column], ["id"])
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('earliest_due_at', models.base.UTCDateTime(timezone=True), nullable=True))
    _backfill()
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_open_earliest_due', [
            'is_open', 'earliest_due_at', 'office_id', 'unit_id', 'status', 'first_feedback_at',
            'dispatch_due_at', 'ack_due_at', 'feedback_due_at', 'resolve_due_at', 'confirm_due_at'], unique=False)
        batch_op.create_index('ix_tickets_open_office_level', ['is_open', 'office_id', 'escalation_level'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_open_office_level')
        batch_op.drop_index('ix_tickets_open_earliest_due')
        batch_op.drop_column('earliest_due_at')
    if op.get_bind().dialect.name != "sqlite":
        for name, _ in _UNIT_PEOPLE:
            op.drop_constraint(name, "units", type_="foreignkey")
