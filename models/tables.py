"""The tables: organisation, tickets and their audit trail, conversations, the
inbound queue and the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, UTCDateTime

person_roles = Table(
    "person_roles",
    Base.metadata,
    Column("person_id", ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(32), primary_key=True),
)

project_liaisons = Table(
    "project_liaisons",
    Base.metadata,
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("person_id", ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True),
)


class Office(Base):
    __tablename__ = "offices"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    short_name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(16))  # city | county
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"))
    county: Mapped[str | None] = mapped_column(String(100))
    ticket_prefix: Mapped[str] = mapped_column(String(8), unique=True)
    wecom_webhook: Mapped[str | None] = mapped_column(String(500))
    dingtalk_webhook: Mapped[str | None] = mapped_column(String(500))
    dingtalk_webhook_secret: Mapped[str | None] = mapped_column(String(200))

    parent: Mapped[Office | None] = relationship(remote_side="Office.id", lazy="raise")


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_type: Mapped[str] = mapped_column(String(32), index=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id", use_alter=True))
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id", use_alter=True))

    office: Mapped[Office] = relationship(lazy="raise")


class Person(Base):
    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    office_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"), index=True)
    company: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    preferred_channel: Mapped[str] = mapped_column(String(16), default="wecom")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    role_rows = relationship("PersonRole", lazy="selectin", cascade="all, delete-orphan")
    identities: Mapped[list[Identity]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", back_populates="person"
    )

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(r.role for r in self.role_rows)


class PersonRole(Base):
    __table__ = person_roles


class Identity(Base):
    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))

    person: Mapped[Person] = relationship(back_populates="identities", lazy="raise")


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), index=True)
    level: Mapped[str] = mapped_column(String(16))  # province | city | county
    company: Mapped[str | None] = mapped_column(String(200))
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))

    # Loaded only where asked for (selectinload): most reads of a project need no people.
    liaisons: Mapped[list[Person]] = relationship(secondary=project_liaisons, lazy="raise")


class TicketCounter(Base):
    """The last ticket sequence number issued per office and year."""

    __tablename__ = "ticket_counters"

    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # Sweeps ask "what is due now among open tickets": one indexed range each.
        Index("ix_tickets_open_next_action", "is_open", "next_action_at"),
        # Digests ask "what is overdue / due soon": a range of the earliest
        # deadline, answered from the index alone (it holds what they test).
        Index("ix_tickets_open_earliest_due", "is_open", "earliest_due_at", "office_id", "unit_id", "status",
              "first_feedback_at", "dispatch_due_at", "ack_due_at", "feedback_due_at", "resolve_due_at",
              "confirm_due_at"),
        # Open counts and escalation levels per office, read from the index alone.
        Index("ix_tickets_open_office_level", "is_open", "office_id", "escalation_level"),
        Index("ix_tickets_open_unit_status", "is_open", "unit_id", "status"),
        Index("ix_tickets_office_status", "office_id", "status"),
        Index("ix_tickets_created_at", "created_at"),
        Index("ix_tickets_closed_at", "closed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    proposed_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))

    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    tier: Mapped[str] = mapped_column(String(16))
    unit_type: Mapped[str | None] = mapped_column(String(32))
    triage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    needs_office: Mapped[bool] = mapped_column(Boolean, default=False)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    dispatch_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ack_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    feedback_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolve_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirm_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The earliest moment the clock has something to do for this ticket.
    next_action_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The earliest deadline it still has to meet (workflow.outstanding_deadlines);
    # overdue means earliest_due_at < now. None when closed.
    earliest_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    resolution: Mapped[str | None] = mapped_column(Text)
    satisfied_first_time: Mapped[bool | None] = mapped_column(Boolean)

    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    flag: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the five in place
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # written plan of a major problem
    pending_extension: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    extensions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    secondary_unit_types: Mapped[list[str]] = mapped_column(JSON, default=list)

    project: Mapped[Project | None] = relationship(lazy="raise")
    unit: Mapped[Unit | None] = relationship(foreign_keys=[unit_id], lazy="raise")
    office: Mapped[Office] = relationship(lazy="raise")


class TicketEvent(Base):
    """One change of a ticket: the audit trail and the source of every statistic."""

    __tablename__ = "ticket_events"
    __table_args__ = (
        Index("ix_ticket_events_ticket_at", "ticket_id", "at"),
        Index("ix_ticket_events_kind_at", "kind", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))  # None: the system
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))  # the handling unit then
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TicketAttachment(Base):
    __tablename__ = "ticket_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))  # image | voice | file | location
    channel: Mapped[str] = mapped_column(String(16))
    media_id: Mapped[str | None] = mapped_column(String(300))
    path: Mapped[str | None] = mapped_column(String(500))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Platform media still to download: pending -> done | failed.
    fetch_status: Mapped[str | None] = mapped_column(String(16), index=True)
    fetch_attempts: Mapped[int] = mapped_column(Integer, default=0)
    fetch_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetch_error: Mapped[str | None] = mapped_column(Text)


class TriageCorrection(Base):
    """The office moved a ticket from the proposed unit type to another: learning data."""

    __tablename__ = "triage_corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    text: Mapped[str] = mapped_column(Text)
    proposed_type: Mapped[str | None] = mapped_column(String(32))
    correct_type: Mapped[str] = mapped_column(String(32))


class Conversation(Base):
    """A person's short dialogue state (project choice, attachments after a report)."""

    __tablename__ = "conversations"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InboundMessage(Base):
    """A message as received, stored before the platform is answered."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("channel", "message_id"),
        Index("ix_inbound_pending", "status", "id"),
        Index("ix_inbound_sender", "channel", "sender_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(200))
    sender_id: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)


class Notice(Base):
    """The outbox: everything the bot says goes through here, after the commit."""

    __tablename__ = "notices"
    __table_args__ = (
        Index("ix_notices_due", "status", "next_attempt_at"),
        Index("ix_notices_address", "channel", "address", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # person | group
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    office_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(500))  # platform user id, or webhook URL
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sending|sent|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class LocalInboxItem(Base):
    """What the built-in simulator delivered to a person: their chat window."""

    __tablename__ = "local_inbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
