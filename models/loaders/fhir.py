"""A FHIR R4/R5 CodeSystem resource in JSON (or a Bundle holding exactly one).

Nested concepts take the enclosing code as a parent; a `parent` property adds more (FHIR's way to
express a polyhierarchy). Designations are synonyms, the definition and every other property
become attributes. `active` means "a valid mapping target": a concept is inactive when its
`inactive` property is true, its `status` is retired/deprecated/inactive or it has a `deprecated`
date, consistent with LOINC, where DEPRECATED and DISCOURAGED terms are inactive too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from models.loaders._common import distinct
from models.terminology import AttributeValue, Concept, Terminology, TerminologyFormatError

FORMAT = "fhir"

INACTIVE_STATUSES = frozenset({"retired", "deprecated", "inactive"})
# Structural properties: read into parents/active, not repeated as attributes.
STRUCTURAL = frozenset({"parent", "child"})
VALUE_KEYS = (
    "valueCode",
    "valueString",
    "valueBoolean",
    "valueInteger",
    "valueDecimal",
    "valueDateTime",
    "valueCoding",
)


def load(path: Path, name: str = "fhir") -> Terminology:
    path = Path(path)
    resource = _code_system(_read_json(path), path)
    if not resource.get("concept"):
        content = resource.get("content", "unknown")
        problem = f"CodeSystem has no concepts (content={content!r})"
        raise TerminologyFormatError(path, None, problem)
    concepts: list[Concept] = []
    seen: set[str] = set()
    for node, enclosing, where in _walk(resource, path):
        concept = _concept(node, enclosing, where, path)
        if concept.code in seen:
            raise TerminologyFormatError(path, None, f"{where}: duplicate code {concept.code!r}")
        seen.add(concept.code)
        concepts.append(concept)
    version = str(resource.get("version") or "unknown")
    url = resource.get("url")
    return Terminology(name, FORMAT, version, concepts, url if isinstance(url, str) and url.strip() else None)


def _read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise TerminologyFormatError(path, None, f"cannot read file: {error.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise TerminologyFormatError(path, line, "not UTF-8 text") from None
    if not text.strip():
        raise TerminologyFormatError(path, 1, "empty file: expected a CodeSystem resource")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        problem = f"invalid JSON: {error.msg} (column {error.colno})"
        raise TerminologyFormatError(path, error.lineno, problem) from None


def _code_system(resource: Any, path: Path) -> dict[str, Any]:
    kind = _kind(resource)
    if kind == "CodeSystem":
        return resource
    if kind == "Bundle":
        entries = [e.get("resource") for e in resource.get("entry") or [] if isinstance(e, dict)]
        systems = [r for r in entries if _kind(r) == "CodeSystem"]
        if len(systems) == 1:
            return systems[0]
        problem = f"a Bundle with {len(systems)} CodeSystem entries: pass a single CodeSystem"
        raise TerminologyFormatError(path, None, problem)
    problem = f"expected a FHIR CodeSystem, found resourceType {kind!r}"
    raise TerminologyFormatError(path, None, problem)


def _kind(resource: Any) -> str | None:
    return resource.get("resourceType") if isinstance(resource, dict) else None


def _walk(resource: dict[str, Any], path: Path) -> Iterator[tuple[dict[str, Any], list[str], str]]:
    """(concept, enclosing code, JSON path) depth-first in document order, without recursion."""
    stack = [(node, None, f"concept[{i}]") for i, node in enumerate(resource["concept"])][::-1]
    while stack:
        node, enclosing, where = stack.pop()
        if not isinstance(node, dict):
            raise TerminologyFormatError(path, None, f"{where} is not a JSON object")
        yield node, [enclosing] if enclosing else [], where
        children = list(enumerate(node.get("concept") or []))
        code = node.get("code")
        stack.extend((child, code, f"{where}.concept[{i}]") for i, child in reversed(children))


def _concept(node: dict[str, Any], enclosing: list[str], where: str, path: Path) -> Concept:
    code = node.get("code")
    if not isinstance(code, str) or not code.strip():
        raise TerminologyFormatError(path, None, f"{where} has no code")
    properties = _properties(node.get("property") or [], where, path)
    display = (node.get("display") or "").strip()
    designations = [str(d.get("value") or "") for d in node.get("designation") or [] if isinstance(d, dict)]
    display = display or next((d.strip() for d in designations if d.strip()), code)
    parents = enclosing + [p for p in _as_list(properties.get("parent")) if p not in enclosing]
    attributes = {k: v for k, v in properties.items() if k not in STRUCTURAL}
    if node.get("definition"):
        attributes["definition"] = node["definition"]
    return Concept(
        code=code.strip(),
        display=display,
        synonyms=distinct(designations, besides=display),
        parents=parents,
        attributes=attributes,
        active=_active(properties),
    )


def _properties(items: list[Any], where: str, path: Path) -> dict[str, AttributeValue]:
    """property[] as attributes; a property given more than once becomes a list of strings."""
    values: dict[str, AttributeValue] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("code"):
            raise TerminologyFormatError(path, None, f"{where}.property[{i}] has no code")
        value = _value(item)
        code = item["code"]
        if code in values:
            values[code] = _as_list(values[code]) + [str(value)]
        else:
            values[code] = value
    return values


def _value(item: dict[str, Any]) -> AttributeValue:
    for key in VALUE_KEYS:
        if key in item:
            value = item[key]
            if key == "valueCoding":  # keep the code: a Coding is not a plain attribute value
                return value.get("code") if isinstance(value, dict) else None
            return value
    return None


def _as_list(value: AttributeValue) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _active(properties: dict[str, AttributeValue]) -> bool:
    statuses = {s.casefold() for s in _as_list(properties.get("status"))}
    return not (
        properties.get("inactive") in (True, "true")
        or statuses & INACTIVE_STATUSES
        or properties.get("deprecated") not in (None, False)
    )
