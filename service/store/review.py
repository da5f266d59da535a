"""Tables of the review itself, beside the items: comment threads and review claims.

Both are audited (`service.audit.record` writes them). A comment is never edited or deleted: a thread
only grows, so a decision never wipes what a reviewer wrote. A claim is a short lease on an item a
reviewer has open, so that a second reviewer's queue hands out the next item instead of the same one.
"""

from __future__ import annotations

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.store.audited import audited
from service.store.tables import utcnow


class ItemComment(SQLModel, table=True):
    __tablename__ = "item_comment"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    item_id: int = Field(foreign_key="source_item.id", index=True)
    author: str
    text: str = Field(sa_column=Column(Text, nullable=False))
    action: str | None = Field(default=None, max_length=40)  # the decision it came with, if any
    created_at: str = Field(default_factory=utcnow)


class ReviewClaim(SQLModel, table=True):
    """Who has an item open for review, until when (one row per item, renewed or taken over when stale)."""

    __tablename__ = "review_claim"
    __table_args__ = (UniqueConstraint("item_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    item_id: int = Field(foreign_key="source_item.id")
    holder: str
    expires_at: str  # ISO time, UTC


audited(ItemComment, "comment")
audited(ReviewClaim, "claim")
