"""What a handler gets: the message, who sent it, the unit of work, the clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.message import HandlerResult, IncomingMessage, MessageKind, Notice, Reply
from config.policy import Policy
from models.tables import Conversation, Person
from models.workflow import Actor


@dataclass(frozen=True)
class Services:
    """Long-lived collaborators, built once at start-up by the app."""

    policy: Policy
    classifier: Any  # handlers.triage.Classifier
    media_dir: Path
    public_url: str = ""
    export_dir: Path | None = None
    # (session, *, office_ids, now, path) -> Path: writes the ledger workbook. The app
    # hands it in (it lives in scheduler/, which handlers may not import).
    ledger_exporter: Callable[..., Awaitable[Path]] | None = None


@dataclass
class Context:
    session: AsyncSession
    services: Services
    message: IncomingMessage
    now: datetime
    person: Person | None = None
    actor: Actor | None = None
    conversation: Conversation | None = None
    notices: list[Notice] = field(default_factory=list)

    @property
    def policy(self) -> Policy:
        return self.services.policy

    @property
    def text(self) -> str:
        """The command text: the typed text, or the key of a clicked button."""
        if self.message.kind == MessageKind.ACTION and self.message.action:
            return self.message.action
        return (self.message.text or "").strip()

    @property
    def command(self) -> str:
        parts = self.text.split(maxsplit=1)
        return parts[0] if parts else ""

    @property
    def args(self) -> str:
        parts = self.text.split(maxsplit=1)
        return parts[1].strip() if len(parts) > 1 else ""

    @property
    def roles(self) -> frozenset[str]:
        return self.person.roles if self.person else frozenset()

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))

    def notify(self, person_key: str, reply: Reply, dedupe_key: str | None = None, ticket_number: str | None = None):
        self.notices.append(Notice(person_key, reply, dedupe_key, ticket_number))

    def answer(self, *replies: Reply) -> HandlerResult:
        return HandlerResult(replies=tuple(replies), notices=tuple(self.notices))
