"""Channel-neutral messages: what arrives from any platform and what the bot says back.

Frozen dataclasses with no behaviour beyond (de)serialisation, so that channels,
handlers and the scheduler can share them without depending on each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class MessageKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VOICE = "voice"
    FILE = "file"
    LOCATION = "location"
    ACTION = "action"  # a button click on a card
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Attachment:
    kind: str  # "image" | "voice" | "file"
    media_id: str | None = None
    path: str | None = None  # where the downloaded file is kept, when it is kept
    mime: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    label: str = ""


@dataclass(frozen=True)
class IncomingMessage:
    """One message from one person, as the platform delivered it.

    `message_id` is the platform's idempotency key (MsgId, or a key built from an
    event's own fields); `sender_id` is the platform's user id for that channel.
    """

    channel: str  # "wecom" | "dingtalk" | "local"
    message_id: str
    sender_id: str
    kind: MessageKind
    received_at: datetime
    text: str = ""
    action: str | None = None  # button key of a card click
    attachments: tuple[Attachment, ...] = ()
    location: Location | None = None
    chat_id: str | None = None  # group conversation, when not a 1:1 chat
    reply_webhook: str | None = None  # DingTalk sessionWebhook
    reply_webhook_expires_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        # Field by field rather than dataclasses.asdict: this runs once per callback.
        expires = self.reply_webhook_expires_at
        return {
            "channel": self.channel, "message_id": self.message_id, "sender_id": self.sender_id,
            "kind": str(self.kind), "received_at": self.received_at.isoformat(), "text": self.text,
            "action": self.action, "attachments": [vars(a).copy() for a in self.attachments],
            "location": vars(self.location).copy() if self.location else None, "chat_id": self.chat_id,
            "reply_webhook": self.reply_webhook,
            "reply_webhook_expires_at": expires.isoformat() if expires else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IncomingMessage:
        values = dict(data)
        values["kind"] = MessageKind(values["kind"])
        values["received_at"] = datetime.fromisoformat(values["received_at"])
        expires = values.get("reply_webhook_expires_at")
        values["reply_webhook_expires_at"] = datetime.fromisoformat(expires) if expires else None
        values["attachments"] = tuple(Attachment(**a) for a in values.get("attachments") or ())
        loc = values.get("location")
        values["location"] = Location(**loc) if loc else None
        return cls(**values)


@dataclass(frozen=True)
class Button:
    key: str  # what comes back as IncomingMessage.action, e.g. "ack:KP-2026-0001"
    label: str  # what the person sees, e.g. "签收"


@dataclass(frozen=True)
class Reply:
    """What the bot says to one person. A card when it has a title or buttons."""

    text: str
    title: str | None = None
    buttons: tuple[Button, ...] = ()
    markdown: bool = False
    file_path: str | None = None  # a file to send along (the ledger export)

    @property
    def is_card(self) -> bool:
        return bool(self.title or self.buttons)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        values = dict(data)
        values["buttons"] = tuple(Button(**b) for b in values.get("buttons") or ())
        return cls(**values)


@dataclass(frozen=True)
class Notice:
    """A reply addressed to a person (by person key) to go through the outbox.

    `dedupe_key`, when set, makes the notice unique: queuing it twice sends once.
    """

    recipient: str  # Person.key
    reply: Reply
    dedupe_key: str | None = None
    ticket_number: str | None = None


@dataclass(frozen=True)
class GroupNotice:
    """A message to an office group through its group robot webhook."""

    office: str  # Office.key
    reply: Reply
    dedupe_key: str | None = None
    image_path: str | None = None


@dataclass(frozen=True)
class SendResult:
    ok: bool
    retryable: bool = True
    error: str = ""
    platform_id: str | None = None  # the platform's message id, for the record

    @classmethod
    def success(cls, platform_id: str | None = None) -> SendResult:
        return cls(ok=True, retryable=False, platform_id=platform_id)

    @classmethod
    def failure(cls, error: str, retryable: bool = True) -> SendResult:
        return cls(ok=False, retryable=retryable, error=error)


@dataclass(frozen=True)
class HandlerResult:
    """What a handler returns: the replies to the sender and notices to others."""

    replies: tuple[Reply, ...] = ()
    notices: tuple[Notice, ...] = field(default_factory=tuple)
