"""A target model served like a terminology, so field mappings use the code-review machinery unchanged.

- `as_terminology`: one `Concept` per target field (code `table.column`), so decisions, search,
  releases and exports look fields up as they look codes up.
- `FieldTerminologySuggester`: `FieldSuggester` behind the interface the review service calls
  (`suggest(items, top_k, where)`, `search`, `terminology`, `model_version`). A source column arrives
  as an item whose code is `table.column` and whose context carries what `source_item_context` wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ingest.schema import SourceColumn, SourceSchema, ValueProfile
from models.fields.learned import FieldRanker
from models.fields.suggest import FieldSuggester
from models.fields.targets import TargetField, TargetModel
from models.items import SourceItem, Suggestion
from models.systems import CodeSystem
from models.terminology import Concept, Terminology, attributes_match

FORMAT = "target-model"  # a Terminology's format when it is a target data model
# The bundled models' identities: what exports name the targets' system (never the OMOP *vocabularies*,
# which an `omop-...` name would otherwise be taken for). Loaded models get a local URN from their name.
BUNDLED_SYSTEMS = {
    "omop-cdm-5.4": CodeSystem(
        "https://ohdsi.github.io/CommonDataModel/cdm54.html",
        "OMOP CDM 5.4",
        "OMOPCDM54",
        "https://ohdsi.github.io/CommonDataModel/cdm54.html#",
    ),
    "omop-cdm-5.3": CodeSystem(
        "https://ohdsi.github.io/CommonDataModel/cdm53.html",
        "OMOP CDM 5.3",
        "OMOPCDM53",
        "https://ohdsi.github.io/CommonDataModel/cdm53.html#",
    ),
    "fhir-r4": CodeSystem("http://hl7.org/fhir/R4", "FHIR R4", "FHIRR4", "http://hl7.org/fhir/R4/"),
}


def as_terminology(model: TargetModel) -> Terminology:
    system = BUNDLED_SYSTEMS.get(model.name)
    concepts = [_concept(f) for f in model.fields]
    return Terminology(model.name, FORMAT, model.version, concepts, system.uri if system else None)


def _concept(target: TargetField) -> Concept:
    display = f"{target.key}: {target.description}" if target.description else target.key
    attributes = {"table": target.table, "column": target.column, "type": target.type, "required": target.required}
    if target.foreign_key:
        attributes["fk"] = target.foreign_key
    return Concept(target.key, display[:1000], attributes=attributes)


def source_item_context(column: SourceColumn) -> dict[str, str]:
    """What a project keeps of a source column beside its code and text (shown on the item page)."""
    context = {
        "table": column.table,
        "column": column.column,
        "description": column.description,
        "type": column.type,
        "table_description": column.table_description[:500],
    }
    if column.profile is not None:  # `profile` for the reviewer; kind and patterns for the suggester
        context["profile"] = column.profile.describe()
        context["profile_kind"] = column.profile.kind
        context["profile_patterns"] = ",".join(column.profile.patterns)
    return {k: v for k, v in context.items() if v}


def source_items(schema: SourceSchema) -> list[tuple[str, str, dict[str, str]]]:
    """(code, text, context) per source column: code `table.column`, text its description or name."""
    return [(c.key, c.description or c.column, source_item_context(c)) for c in schema.columns]


def source_column(item: SourceItem) -> SourceColumn:
    """The source column an item stands for (a search text is a column name without a table)."""
    context = item.context or {}
    table, _, column = item.code.rpartition(".")
    profile = None
    if context.get("profile_kind"):
        patterns = [p for p in context.get("profile_patterns", "").split(",") if p]
        profile = ValueProfile(context["profile_kind"], 0, 0.0, 0, patterns)
    return SourceColumn(
        table=context.get("table", table),
        column=context.get("column", column or item.text),
        description=context.get("description", ""),
        type=context.get("type", ""),
        table_description=context.get("table_description", ""),
        profile=profile,
    )


class FieldTerminologySuggester:
    """A fitted `FieldSuggester` as the review service's suggester for a target model."""

    def __init__(self, suggester: FieldSuggester, model: TargetModel, model_version: str | None = None):
        self.suggester = suggester
        self.model = model
        self.terminology = as_terminology(model)
        encoder = type(suggester.encoder).__name__ if suggester.encoder is not None else "no-encoder"
        self.model_version = model_version or f"field-suggester:{model.name}@{model.version}+{encoder}"

    def with_ranker(self, ranker: FieldRanker | None, model_version: str) -> FieldTerminologySuggester:
        """The same fitted target model ranked by a team's field model (a registered version)."""
        return FieldTerminologySuggester(self.suggester.with_ranker(ranker), self.model, model_version)

    def suggest(
        self, items: Sequence[SourceItem], top_k: int = 10, where: dict[str, Any] | None = None
    ) -> list[list[Suggestion]]:
        columns = [source_column(item) for item in items]
        allowed = None
        if where:
            allowed = {c.code for c in self.terminology if attributes_match(c, where)}
            if not allowed:
                raise ValueError(f"no field of {self.terminology.name} matches the filter {where}")
        # With a filter, rank every field and keep the allowed ones (a target model has hundreds, not millions).
        wanted = len(self.terminology) if allowed is not None else top_k
        out = []
        for ranked in self.suggester.suggest(columns, wanted):
            kept = [c for c in ranked.candidates if allowed is None or c.key in allowed][:top_k]
            out.append(
                [
                    Suggestion(c.key, self.terminology.get(c.key).display, c.score, rank, dict(c.evidence))
                    for rank, c in enumerate(kept, start=1)
                ]
            )
        return out

    def search(self, text: str, top_k: int = 10, where: dict[str, Any] | None = None) -> list[Suggestion]:
        return self.suggest([SourceItem(code="", text=text)], top_k, where)[0]
