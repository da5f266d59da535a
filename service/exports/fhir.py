"""FHIR ConceptMap R4 (`equivalence`) and R5 (`relationship`, `noMap`) for a release."""

from __future__ import annotations

import json
from typing import Any

from service.exports.bundle import ReleaseBundle
from service.exports.systems import computable_name, conceptmap_url
from service.store.tables import EntryBase, Status

# R5 relationship -> R4 ConceptMapEquivalence. R4 reads from the target's side: a source narrower
# than its target means the target is *wider*.
R4_EQUIVALENCE = {
    "equivalent": "equivalent",
    "source-is-narrower-than-target": "wider",
    "source-is-broader-than-target": "narrower",
    "related-to": "relatedto",
    "not-related-to": "disjoint",
}


def conceptmap_r4(bundle: ReleaseBundle) -> dict[str, Any]:
    return _conceptmap(bundle, [_element_r4(e) for e in bundle.entries])


def conceptmap_r5(bundle: ReleaseBundle) -> dict[str, Any]:
    return _conceptmap(bundle, [_element_r5(e) for e in bundle.entries])


def conceptmap_r4_json(bundle: ReleaseBundle) -> str:
    return json.dumps(conceptmap_r4(bundle), indent=2, ensure_ascii=False)


def conceptmap_r5_json(bundle: ReleaseBundle) -> str:
    return json.dumps(conceptmap_r5(bundle), indent=2, ensure_ascii=False)


def _conceptmap(bundle: ReleaseBundle, elements: list[dict[str, Any]]) -> dict[str, Any]:
    project, release = bundle.project, bundle.release
    resource: dict[str, Any] = {
        "resourceType": "ConceptMap",
        "id": f"crosswalk-{project.id}-{release.number}",
        "url": conceptmap_url(project),
        "version": str(release.number),
        "name": computable_name(project.name),
        "title": f"{project.name}: {project.source_system} to {project.target_terminology}",
        "status": "active",
        "date": release.created_at,
        "publisher": release.created_by,
        "description": release.note or f"Release {release.number} of crosswalk project {project.name!r}.",
    }
    if elements:
        group = {"source": project.source_uri, "target": bundle.target_system.uri, "element": elements}
        resource["group"] = [group]
    return resource


def _element(entry: EntryBase) -> dict[str, Any]:
    return {"code": entry.source_code, "display": entry.source_text}


def _target(entry: EntryBase) -> dict[str, Any]:
    return {"code": entry.target_code, "display": entry.target_display}


def _element_r4(entry: EntryBase) -> dict[str, Any]:
    if entry.status == Status.unmappable:
        return {**_element(entry), "target": [{"equivalence": "unmatched", **_comment(entry.comment)}]}
    equivalence = R4_EQUIVALENCE[entry.relationship or "equivalent"]
    comment = entry.comment
    if equivalence == "narrower" and not comment:  # R4 invariant cmd-1: narrower maps SHALL carry a comment
        comment = "The source concept is broader than the target."
    return {**_element(entry), "target": [{**_target(entry), "equivalence": equivalence, **_comment(comment)}]}


def _element_r5(entry: EntryBase) -> dict[str, Any]:
    if entry.status == Status.unmappable:
        return {**_element(entry), "noMap": True}
    target = {**_target(entry), "relationship": entry.relationship or "equivalent", **_comment(entry.comment)}
    return {**_element(entry), "target": [target]}


def _comment(comment: str | None) -> dict[str, str]:
    return {"comment": comment} if comment else {}


def translate_parameters(bundle: ReleaseBundle | None, code: str, system_ok: bool = True) -> dict[str, Any]:
    """The FHIR `$translate` answer (R5 shape, with R4's `equivalence` too) for one source code."""
    entry = next((e for e in bundle.entries if e.source_code == code), None) if bundle and system_ok else None
    if bundle is None or entry is None or entry.status == Status.unmappable:
        why = (
            "the project has no release yet"
            if bundle is None
            else f"{code!r} is released as unmappable"
            if entry is not None
            else f"no mapping for {code!r} in release {bundle.release.number}"
        )
        return _parameters(False, why)
    relationship = entry.relationship or "equivalent"
    coding = {"system": bundle.target_system.uri, "code": entry.target_code, "display": entry.target_display}
    parts = [
        {"name": "relationship", "valueCode": relationship},
        {"name": "equivalence", "valueCode": R4_EQUIVALENCE[relationship]},
        {"name": "concept", "valueCoding": coding},
        {"name": "originMap", "valueCanonical": f"{conceptmap_url(bundle.project)}|{bundle.release.number}"},
    ]
    matched = relationship != "not-related-to"
    message = f"release {bundle.release.number}: {code} -> {entry.target_code} ({relationship})"
    return _parameters(matched, message, [{"name": "match", "part": parts}])


def _parameters(result: bool, message: str, more: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    parameter = [{"name": "result", "valueBoolean": result}, {"name": "message", "valueString": message}]
    return {"resourceType": "Parameters", "parameter": parameter + (more or [])}
