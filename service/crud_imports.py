"""Source items in (crosswalk CSV or Usagi CSV) and machine suggestions for them.

Re-importing updates texts, frequencies and context but never touches decisions.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from sqlmodel import Session, col, select

from models.items import SourceItem as ModelItem
from models.items import Suggestion as ModelSuggestion
from models.terminology import Terminology
from service import audit
from service.crud import MAX_CODE_LENGTH, MAX_STORED_INT
from service.store.errors import Invalid, NotFound
from service.store.tables import (
    ConceptPublic,
    ImportResult,
    Project,
    SourceItem,
    Status,
    Suggestion,
    SuggestionBatch,
    SuggestRequest,
    SuggestResult,
)

ImportFormat = Literal["csv", "usagi"]
IMPORT_FORMATS: tuple[str, ...] = get_args(ImportFormat)  # the CLI's --format choices, the API's query values
USAGI_KEPT = ("conceptId", "conceptName", "mappingStatus", "equivalence", "comment")  # earlier Usagi work, as context


class SuggesterLike(Protocol):
    """What the review service needs of `models.suggest.Suggester` (tests pass a fake)."""

    model_version: str
    terminology: Terminology

    def suggest(
        self, items: Sequence[ModelItem], top_k: int = 10, where: dict[str, Any] | None = None
    ) -> list[list[ModelSuggestion]]: ...

    def search(self, text: str, top_k: int = 10, where: dict[str, Any] | None = None) -> list[ModelSuggestion]: ...


@dataclass(frozen=True)
class ImportRow:
    code: str
    text: str
    frequency: int | None = None
    context: dict[str, str] = field(default_factory=dict)


# -- parsing ----------------------------------------------------------------------------------------
def parse_source_file(data: bytes, fmt: ImportFormat = "csv", name: str = "upload") -> list[ImportRow]:
    """Rows of a crosswalk CSV (source_code,source_text[,frequency,...]) or a Usagi CSV export."""
    if fmt not in IMPORT_FORMATS:
        raise Invalid(f"unknown import format {fmt!r}; one of {', '.join(IMPORT_FORMATS)}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise Invalid(f"{name}, line {line}: not UTF-8 text; save the file as UTF-8 CSV") from None
    if "\x00" in text:  # PostgreSQL cannot store it, and no code or text means it
        line = text[: text.index("\x00")].count("\n") + 1
        raise Invalid(f"{name}, line {line}: a NUL byte; save the file as plain UTF-8 text (not UTF-16)")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = ("sourceCode", "sourceName", "sourceFrequency") if fmt == "usagi" else ("source_code", "source_text", "frequency")
    missing = [c for c in columns[:2] if c not in (reader.fieldnames or [])]
    if missing:
        found = ", ".join(reader.fieldnames or []) or "(no header)"
        raise Invalid(f"{name}: missing column(s) {', '.join(missing)} for a {fmt} import; found: {found}")
    rows = list(_rows(reader, columns, fmt, name))
    if not rows:
        raise Invalid(f"{name}: a header but no rows")
    return rows


def _rows(reader: csv.DictReader, columns: tuple[str, str, str], fmt: str, name: str) -> Iterator[ImportRow]:
    seen: set[str] = set()
    try:
        for record in reader:
            line = reader.line_num
            if None in record or any(v is None for v in record.values()):
                raise Invalid(f"{name}, line {line}: the number of fields differs from the header")
            code, text = record[columns[0]].strip(), record[columns[1]].strip()
            if not code and not text and not any(v.strip() for v in record.values()):
                continue
            if not code or not text:
                raise Invalid(f"{name}, line {line}: {columns[0] if not code else columns[1]} is empty")
            if len(code) > MAX_CODE_LENGTH:
                raise Invalid(f"{name}, line {line}: source code is {len(code)} characters, over {MAX_CODE_LENGTH}")
            if code in seen:
                raise Invalid(f"{name}, line {line}: source code {code!r} appears twice")
            seen.add(code)
            yield ImportRow(code, text, _frequency(record.get(columns[2]), name, line), _context(record, columns, fmt))
    except csv.Error as error:
        raise Invalid(f"{name}, line {reader.line_num}: {error}") from None


def _frequency(value: str | None, name: str, line: int) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        number = int(float(value))
    except (ValueError, OverflowError):  # "x", "nan", "1e999"
        raise Invalid(f"{name}, line {line}: frequency {value!r} is not a number") from None
    if number > MAX_STORED_INT:
        raise Invalid(f"{name}, line {line}: frequency {value!r} is over {MAX_STORED_INT}")
    return number if number >= 0 else None  # Usagi writes -1 for "unknown"


def _context(record: dict[str, str], columns: tuple[str, ...], fmt: str) -> dict[str, str]:
    if fmt == "csv":
        return {k: v.strip() for k, v in record.items() if k not in columns and v.strip()}
    context = {k.removeprefix("ADD_INFO:"): v.strip() for k, v in record.items() if k.startswith("ADD_INFO:") and v.strip()}
    context.update({f"usagi_{k}": record[k].strip() for k in USAGI_KEPT if (record.get(k) or "").strip()})
    return context


# -- importing --------------------------------------------------------------------------------------
def import_items(session: Session, project: Project, rows: Sequence[ImportRow], actor: str) -> ImportResult:
    existing = {i.code: i for i in session.exec(select(SourceItem).where(SourceItem.project_id == project.id))}
    created = updated = 0
    for row in rows:
        fields = {"text": row.text, "frequency": row.frequency, "context": row.context}
        item = existing.get(row.code)
        if item is None:
            audit.record(session, actor, "item.import", SourceItem(project_id=project.id, code=row.code, **fields))
            created += 1
        elif audit.record(session, actor, "item.reimport", item, fields) is not None:
            updated += 1
    return ImportResult(created=created, updated=updated, unchanged=len(rows) - created - updated, total=len(rows))


# -- suggestions ------------------------------------------------------------------------------------
def generate_suggestions(
    session: Session, project: Project, suggester: SuggesterLike, request: SuggestRequest, actor: str
) -> SuggestResult:
    """Rank candidates for the project's items and store them as one audited batch."""
    items = _items_to_suggest(session, project, request)
    queries = [(i.id, ModelItem(code=i.code, text=i.text, context=i.context)) for i in items]
    session.commit()  # let other writers in while the model runs; items are re-read below
    results = rank(suggester, project, [q for _, q in queries], request.top_k) if queries else []
    if not queries:
        return SuggestResult(batch_id=None, model_version=suggester.model_version, items=0)
    return _store_batch(session, project, suggester.model_version, request.top_k, queries, results, actor)


def rank(suggester: SuggesterLike, project: Project, queries: Sequence[ModelItem], top_k: int) -> list[list[ModelSuggestion]]:
    """The suggester's candidates within the project's target filter; a filter nothing meets is a 422."""
    try:
        return suggester.suggest(queries, top_k=top_k, where=project.target_filter or None)
    except ValueError as error:  # models.suggest: "no concept of X matches the filter ..."
        raise Invalid(f"project {project.name!r}: {error}; change the project's target filter") from None


def search(suggester: SuggesterLike, project: Project, text: str, top_k: int) -> list[ConceptPublic]:
    """Concepts to remap to: the concept whose code is `text` first, then the ranked search."""
    exact = suggester.terminology.get(text.strip())
    found = [ConceptPublic(code=exact.code, display=exact.display)] if exact else []
    ranked = rank(suggester, project, [ModelItem(code="", text=text)], top_k)[0]
    found += [ConceptPublic(code=s.code, display=s.display, score=s.score) for s in ranked if not exact or s.code != exact.code]
    return found[:top_k]


def _items_to_suggest(session: Session, project: Project, request: SuggestRequest) -> list[SourceItem]:
    query = select(SourceItem).where(SourceItem.project_id == project.id).order_by(SourceItem.id)
    if request.only_new:
        query = query.where(col(SourceItem.suggestion_batch_id).is_(None))
    items = list(session.exec(query))
    if request.codes is not None:
        by_code = {i.code: i for i in items}
        unknown = [c for c in request.codes if c not in by_code]
        if unknown:
            raise NotFound(f"project {project.name!r} has no source code(s) {', '.join(map(repr, unknown[:10]))}")
        items = [by_code[c] for c in dict.fromkeys(request.codes)]
    return items


def _store_batch(
    session: Session,
    project: Project,
    model_version: str,
    top_k: int,
    queries: list[tuple[int, ModelItem]],
    results: list[list[ModelSuggestion]],
    actor: str,
) -> SuggestResult:
    suggestions = [
        Suggestion(item_id=item_id, rank=s.rank, code=s.code, display=s.display, score=float(s.score), evidence=_plain(s.evidence))
        for (item_id, _), ranked in zip(queries, results)
        for s in ranked
    ]
    batch = SuggestionBatch(project_id=project.id, model_version=model_version, top_k=top_k, item_count=len(queries), created_by=actor)
    audit.record(session, actor, "suggestions.generate", batch, children=suggestions, model_version=model_version)
    ids = [item_id for item_id, _ in queries]
    query = select(SourceItem).where(col(SourceItem.id).in_(ids)).order_by(SourceItem.id)
    fresh = list(session.exec(query.execution_options(populate_existing=True)))  # decided meanwhile?
    for item in fresh:
        status = Status.suggested if item.status == Status.new else item.status
        changes = {"suggestion_batch_id": batch.id, "status": status}
        audit.record(session, actor, "item.suggest", item, changes, model_version=model_version)
    return SuggestResult(batch_id=batch.id, model_version=model_version, items=len(queries))


def _plain(evidence: dict[str, Any]) -> dict[str, Any]:
    """Evidence as JSON data (numpy scalars from the matchers become floats)."""
    return json.loads(json.dumps(evidence, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
