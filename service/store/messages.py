"""Messages as evidence: every HL7 v2 message or FHIR document that came in (compressed, with its sha256),
those that could not be read (dead letters, with the reason), and which review items each one carried.

These rows are append-only evidence, not audited state: `service.monitoring.messages` is their one write
path (`store_message`, `store_dead_letter`, `link_items`), and the only later change is stamping a
stored message with the feed batch it was scored in. Auditing each message would put one hash-chain
event per message on the listener's path before its ACK; the sha256 of the raw bytes is kept instead,
so a stored message is checked against its own digest whenever it is read (`message_bytes`).
"""

from __future__ import annotations

from sqlalchemy import Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.store.tables import ImportResult, utcnow


class StoredMessage(SQLModel, table=True):
    """One message, stored once whatever brought it (a listener, an HTTP POST, a file import)."""

    __tablename__ = "stored_message"
    __table_args__ = (Index("ix_stored_message_feed_batch", "feed_id", "batch_number"),)

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, unique=True)  # of the raw bytes; a resent message is not stored twice
    format: str = Field(max_length=10)  # "hl7v2" | "fhir"
    # the feed it arrived on, if any; no foreign key: this migration branches from the base revision, not
    # from the one that creates `feed`, so it cannot depend on that table existing first
    feed_id: int | None = None
    origin: str = Field(max_length=400)  # "mllp", "http", "file:results.hl7"
    received_at: str = Field(default_factory=utcnow)
    control_id: str = Field(default="", max_length=200)  # MSH-10, or the FHIR resource id
    message_type: str = Field(default="", max_length=40)  # "ORU^R01", "Bundle"
    site: str = Field(default="", max_length=200)  # MSH-4, the sending facility
    size: int  # bytes before compression
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # zlib-compressed raw bytes
    batch_number: int | None = None  # the feed batch that scored it; None while waiting for one


class DeadLetter(SQLModel, table=True):
    """A payload that could not be read or kept, with why: nothing a sender sent is silently dropped."""

    __tablename__ = "dead_letter"

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int | None = Field(default=None, index=True)  # no foreign key, as above
    origin: str = Field(max_length=400)
    received_at: str = Field(default_factory=utcnow)
    sha256: str = Field(max_length=64)
    control_id: str = Field(default="", max_length=200)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # zlib-compressed


class ItemMessage(SQLModel, table=True):
    """A review item's evidence: a stored message that carried its code."""

    __tablename__ = "item_message"
    __table_args__ = (UniqueConstraint("item_id", "message_id"),)

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="source_item.id", index=True)
    message_id: int = Field(foreign_key="stored_message.id", index=True)


class MessagePublic(SQLModel):
    id: int
    sha256: str
    format: str
    origin: str
    received_at: str
    control_id: str
    message_type: str
    site: str
    size: int
    batch_number: int | None


class LineageMessage(MessagePublic):
    flagged: bool = Field(default=False, description="Named by the alert's structural findings (conformance).")
    raw: str | None = Field(default=None, description="The stored message (asked for), its bytes checked.")


class Lineage(SQLModel):
    """Where an alert or a review item came from: the stored messages behind it."""

    source: str = Field(description='"alert" or "item".')
    feed: str | None = None
    alert: str | None = Field(default=None, description="The alert's uid.")
    summary: str = Field(description="The alert's severity, check, column and message; or the item's code and text.")
    segment: str | None = Field(default=None, description="The alert's segment; its messages are narrowed to it.")
    batches: list[int] = Field(default_factory=list, description="The batches that opened and last showed it.")
    project: str | None = None
    code: str | None = None
    total: int = Field(description="Messages behind it; `messages` lists at most the limit asked for.")
    messages: list[LineageMessage]


class DeadLetterPublic(SQLModel):
    id: int
    origin: str
    received_at: str
    sha256: str
    control_id: str
    reason: str
    size: int


class MessageImportResult(ImportResult):
    """An import's outcome; imports of messages also say what was read and what was left out."""

    messages: int | None = Field(default=None, description="Messages read (HL7 v2 / FHIR imports).")
    stored: int | None = Field(default=None, description="Of those, new to the message store.")
    dead_letters: list[str] | None = Field(default=None, description="Why each unreadable message was set aside.")
    already_coded: int | None = Field(
        default=None, description="Local codes the sender also coded in LOINC/SNOMED/ICD...: left out."
    )


class FhirReceipt(SQLModel):
    stored: list[int] = Field(description="Stored message ids, one per resource or Bundle kept.")
    dead_letters: list[str] = Field(description="Why each document that could not be read was set aside.")
