"""Column roles from approved field mappings: a source column mapped to `measurement.value_as_number` is a
numeric result, whatever it is called and whatever its values look like.

`ROLE_RULES` is the one table from target fields (OMOP CDM, FHIR R4 and custom models that use their paths) to
monitoring roles; `field_roles` turns a project's approved mappings into the `roles=` and `pairs=` that
`monitors.contract.infer_contract` lets win over inference. A value, a unit and a code mapped into the same
target table (`measurement`, `Observation`) form the lab triple, so the unit checks run even when the unit
column's spellings are not ones inference recognises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from monitors.contract import GivenRole, ValueUnitPair

# (target field pattern, role, preference among columns of one table with that role: lower wins)
ROLE_RULES: list[tuple[re.Pattern[str], str, int]] = [
    # OMOP CDM
    (re.compile(r"^\w+\.value_as_number$"), "value", 0),
    (re.compile(r"^\w+\.unit_source_value$"), "unit", 0),
    (re.compile(r"^\w+\.unit_concept_id$"), "unit", 1),
    (re.compile(r"^\w+\.(measurement|observation|condition|drug|procedure|device|specimen)_source_value$"), "code", 0),
    (re.compile(r"^\w+\.(measurement|observation|condition|drug|procedure|device|specimen)_concept_id$"), "code", 1),
    (re.compile(r"^\w+\.(measurement|observation|condition|drug|procedure|device)_source_concept_id$"), "code", 2),
    (re.compile(r"^\w+\.(care_site_id|location_id)$"), "site", 0),
    (re.compile(r"^care_site\.(care_site_name|care_site_source_value)$"), "site", 1),
    (re.compile(r"^\w+\.person_id$"), "patient", 0),
    (re.compile(r"^person\.person_source_value$"), "patient", 1),
    (re.compile(r"^\w+\.\w+_(date|datetime|time)$"), "time", 0),
    # FHIR R4 (bundled: top-level elements; custom models may name the paths below them)
    (re.compile(r"^Observation\.(value\[x\]|valueQuantity(\.value)?)$"), "value", 0),
    (re.compile(r"^Observation\.valueQuantity\.unit$"), "unit", 0),
    (re.compile(r"^Observation\.valueQuantity\.code$"), "unit", 1),
    (re.compile(r"^Observation\.code(\.coding(\.code)?)?$"), "code", 0),
    (re.compile(r"^\w+\.(subject|patient)(\.reference)?$"), "patient", 0),
    (re.compile(r"^Patient\.(id|identifier)$"), "patient", 1),
    (re.compile(r"^Encounter\.(serviceProvider|location)$|^Location\.(id|name)$"), "site", 0),
    (
        re.compile(r"^\w+\.(effective(\[x\]|DateTime|Instant)|issued|recordedDate|authoredOn|onset(\[x\]|DateTime))$"),
        "time",
        0,
    ),
]
PAIRED = ("value", "unit", "code")


def role_of(target: str) -> tuple[str, int] | None:
    """(role, preference) of a target field such as `measurement.value_as_number`; None when it has none."""
    for pattern, role, rank in ROLE_RULES:
        if pattern.match(target):
            return role, rank
    return None


@dataclass(frozen=True)
class FieldMapping:
    """One approved mapping of a source column (`LAB.RESULT_TXT`) to a target field."""

    source: str  # the item's code, `table.column`
    column: str  # the source column's name, as a feed's files name it
    target: str  # `measurement.value_as_number`
    decided_by: str | None = None
    confirmed_by: str | None = None

    @property
    def reason(self) -> str:
        by = f", by {self.decided_by}" if self.decided_by else ""
        confirmed = f", confirmed by {self.confirmed_by}" if self.confirmed_by else ""
        return f"approved field mapping {self.source} -> {self.target}{by}{confirmed}"


@dataclass
class FieldRoles:
    roles: dict[str, GivenRole] = field(default_factory=dict)  # column -> role, with the mapping as the reason
    pairs: list[ValueUnitPair] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # mappings that could not be used, and why

    def to_dict(self) -> dict:
        return {
            "roles": {name: asdict(role) for name, role in sorted(self.roles.items())},
            "pairs": [asdict(p) for p in self.pairs],
            "notes": list(self.notes),
        }


def field_roles(mappings: Iterable[FieldMapping], columns: Sequence[str]) -> FieldRoles:
    """Roles for the `columns` of a feed from approved field mappings. A column matches a mapping by its name
    (exactly, else ignoring case, else as `table.column`); mappings to fields without a monitoring role, and
    columns that two mappings give different roles, are left to inference (and noted)."""
    by_name = {c: c for c in columns} | {c.lower(): c for c in columns if c.lower() not in columns}
    found: dict[str, list[tuple[str, int, FieldMapping]]] = {}
    out = FieldRoles()
    for mapping in sorted(mappings, key=lambda m: (m.source, m.target)):
        column = by_name.get(mapping.column) or by_name.get(mapping.column.lower()) or by_name.get(mapping.source)
        role = role_of(mapping.target)
        if column is None or role is None:
            continue
        found.setdefault(column, []).append((role[0], role[1], mapping))
    chosen: dict[str, tuple[str, int, FieldMapping]] = {}
    for column, options in found.items():
        if len({role for role, _, _ in options}) > 1:
            mapped = ", ".join(f"{m.source} -> {m.target}" for _, _, m in options)
            out.notes.append(f"{column}: mapped to fields with different roles ({mapped}); left to inference")
            continue
        chosen[column] = min(options, key=lambda o: o[1])
    out.roles = {column: GivenRole(role, mapping.reason) for column, (role, _, mapping) in chosen.items()}
    out.pairs = _pairs(chosen)
    return out


def _pairs(chosen: dict[str, tuple[str, int, FieldMapping]]) -> list[ValueUnitPair]:
    """One value/unit/code triple per target table that has all three roles, the preferred column of each."""
    tables: dict[str, dict[str, tuple[int, str, FieldMapping]]] = {}
    for column, (role, rank, mapping) in chosen.items():
        if role not in PAIRED:
            continue
        slot = tables.setdefault(mapping.target.split(".", 1)[0], {})
        if role not in slot or (rank, column) < slot[role][:2]:
            slot[role] = (rank, column, mapping)
    pairs = []
    for _, slot in sorted(tables.items()):
        if set(slot) != set(PAIRED):
            continue
        value, unit, code = (slot[r][1] for r in PAIRED)
        evidence = "approved field mappings: " + "; ".join(
            f"{slot[r][2].source} -> {slot[r][2].target}" for r in PAIRED
        )
        pairs.append(ValueUnitPair(value=value, unit=unit, code=code, evidence=evidence))
    return pairs
