"""Source items in (crosswalk CSV, Usagi CSV, or a source schema's columns) and machine suggestions for them.

Re-importing updates texts, frequencies and context but never touches decisions.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from sqlmodel import Session, col, select

from ingest.schema import SchemaError, SourceSchema, read_schema_csv
from models.fields.serving import source_items
from models.items import SourceItem as ModelItem
from models.items import Suggestion as ModelSuggestion
from models.terminology import Concept, Terminology
from service import audit
from service.concept_search import needs_second_look, text_index
from service.crud import MAX_CODE_LENGTH, MAX_STORED_INT
from service.sources import SourceFileError, csv_problem, decode
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

ImportFormat = Literal["csv", "usagi", "schema"]  # schema: a schema CSV, one item per source column
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
def parse_source_file(
    data: bytes, fmt: ImportFormat = "csv", name: str = "upload", encoding: str | None = None
) -> list[ImportRow]:
    """Rows of a crosswalk CSV (source_code,source_text[,frequency,...]) or a Usagi CSV export, in
    `encoding` (default UTF-8; a byte-order mark decides, e.g. UTF-16 from Excel)."""
    if fmt not in IMPORT_FORMATS:
        raise Invalid(f"unknown import format {fmt!r}; one of {', '.join(IMPORT_FORMATS)}")
    if fmt == "schema":
        return _schema_csv_rows(data, name)
    try:
        text = decode(data, name, encoding)
    except SourceFileError as error:
        raise Invalid(str(error)) from None
    if "\x00" in text:  # PostgreSQL cannot store it, and no code or text means it
        line = text[: text.index("\x00")].count("\n") + 1
        raise Invalid(f"{name}, line {line}: a NUL byte; save the file as plain UTF-8 text (not UTF-16)")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = (
        ("sourceCode", "sourceName", "sourceFrequency")
        if fmt == "usagi"
        else ("source_code", "source_text", "frequency")
    )
    missing = [c for c in columns[:2] if c not in (reader.fieldnames or [])]
    if missing:
        found = ", ".join(reader.fieldnames or []) or "(no header)"
        raise Invalid(f"{name}: missing column(s) {', '.join(missing)} for a {fmt} import; found: {found}")
    rows = list(_rows(reader, columns, fmt, name))
    if not rows:
        raise Invalid(f"{name}: a header but no rows")
    return rows


def schema_rows(schema: SourceSchema) -> list[ImportRow]:
    """One item per source column of a field-mapping project: code `table.column`, text its description
    or name, context what the field suggester and the reviewer read (type, value profile, table). A source
    cut at the column limit is refused: it would be reviewed as if it were whole."""
    if schema.notes:
        raise Invalid(
            f"{schema.notes[0]}; nothing was imported: import the source in parts, or only the columns to map"
        )
    return [ImportRow(code, text, None, context) for code, text, context in source_items(schema)]


def _schema_csv_rows(data: bytes, name: str) -> list[ImportRow]:
    # ingest.schema reads files (it sniffs the encoding); an upload is written to one for it.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (Path(name).name or "upload.csv")
        path.write_bytes(data)
        try:
            return schema_rows(read_schema_csv(path))
        except (SchemaError, Invalid) as error:
            raise Invalid(str(error).replace(str(path), name)) from None


def _rows(reader: csv.DictReader, columns: tuple[str, str, str], fmt: str, name: str) -> Iterator[ImportRow]:
    seen: set[str] = set()
    line = reader.line_num  # the header's: a broken record starts on the line after the last good one
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
        raise Invalid(f"{name}, line {line + 1}: {csv_problem(error)}") from None


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
    context = {
        k.removeprefix("ADD_INFO:"): v.strip() for k, v in record.items() if k.startswith("ADD_INFO:") and v.strip()
    }
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


def rank(
    suggester: SuggesterLike,
    project: Project,
    queries: Sequence[ModelItem],
    top_k: int,
    where: dict[str, Any] | None = None,
) -> list[list[ModelSuggestion]]:
    """The suggester's candidates within the project's target filter (or `where`, which includes it);
    a filter nothing meets is a 422."""
    wanted = where if where is not None else project.target_filter
    try:
        return suggester.suggest(queries, top_k=top_k, where=wanted or None)
    except ValueError as error:  # models.suggest: "no concept of X matches the filter ..."
        raise Invalid(f"project {project.name!r}: {error}; change the project's target filter") from None


@dataclass(frozen=True)
class ConceptSearch:
    """A concept search's answer: what the text finds (the exact code, then word matches), then,
    apart, the model's ranked candidates for the text."""

    found: list[ConceptPublic]
    ranked: list[ConceptPublic]
    hidden_inactive: int  # text matches left out because inactive or deprecated (ask with include_inactive)

    @property
    def concepts(self) -> list[ConceptPublic]:
        return self.found + self.ranked


def search(
    suggester: SuggesterLike,
    project: Project,
    text: str,
    top_k: int,
    filters: dict[str, str] | None = None,
    include_inactive: bool = False,
) -> ConceptSearch:
    """Concepts to remap to: the concept whose code is `text`, then concepts whose display or synonyms
    hold every word of `text` (whole or as a prefix), then the model's ranking; `top_k` of each.
    `filters` (attribute -> value, e.g. LOINC class, system, scale, status) narrow all of them."""
    terminology = suggester.terminology
    wanted = {**(project.target_filter or {}), **{k: v for k, v in (filters or {}).items() if v}}
    include_inactive = include_inactive or bool(wanted.get("status"))  # asking for a status is asking to see it
    exact = terminology.get(text.strip())
    found = [_public(exact, "code")] if exact else []  # the code typed is shown whatever the filters
    matches = text_index(terminology).find(text, wanted, include_inactive, top_k)
    texts = [terminology.concepts[hit.position] for hit in matches.hits]
    found += [_public(concept, "text") for concept in texts if concept is not exact]
    seen = {c.code for c in found}
    try:
        ranked = rank(suggester, project, [ModelItem(code="", text=text)], top_k, wanted)[0]
    except Invalid:
        if not filters or not any(filters.values()):
            raise  # the project's own filter meets nothing: its owner must hear it
        ranked = []  # the reviewer's filter meets nothing the model ranks: the text section says so
    model_hits = [
        _public(concept, "ranked", s.score)
        for s in ranked
        if s.code not in seen and (concept := terminology.get(s.code)) is not None
    ]
    return ConceptSearch(found[:top_k], model_hits[:top_k], matches.hidden_inactive)


def _public(concept: Concept, match: str, score: float | None = None) -> ConceptPublic:
    attributes = {k: v for k, v in concept.attributes.items() if isinstance(v, str | int | float | bool)}
    status = concept.attributes.get("status")
    return ConceptPublic(
        code=concept.code,
        display=concept.display,
        score=score,
        match=match,
        active=concept.active,
        status=status if isinstance(status, str) else None,
        warning=needs_second_look(concept),
        attributes=attributes,
    )


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
        Suggestion(
            item_id=item_id,
            rank=s.rank,
            code=s.code,
            display=s.display,
            score=float(s.score),
            evidence=_plain(s.evidence),
        )
        for (item_id, _), ranked in zip(queries, results)
        for s in ranked
    ]
    batch = SuggestionBatch(
        project_id=project.id, model_version=model_version, top_k=top_k, item_count=len(queries), created_by=actor
    )
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
