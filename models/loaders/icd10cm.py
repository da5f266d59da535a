"""ICD-10-CM from the `simple-icd-10-cm` package: the CDC tabular list bundled with it (2026).

Chapters and blocks are not codes anyone maps to, so they become attributes (`chapter`, `block`)
of the codes beneath them instead of concepts. Leaves are the billable codes.

ICD-10-CM encloses nonessential modifiers in parentheses: "hypertension (arterial) (benign)
(essential)" also names plain "hypertension". Each such title or inclusion term therefore gets a
synonym without them, so "Hypertension NOS" finds I10 instead of a longer "..., unspecified" code.
"""

from __future__ import annotations

import re
from importlib.metadata import version as package_version
from pathlib import Path

from models.systems import FORMAT_SYSTEMS
from models.terminology import Concept, Terminology

FORMAT = "icd10cm"
LOADER_REVISION = 2  # bump when concepts change shape: the catalog rebuilds an older copy
_MODIFIERS = re.compile(r"\s*\([^()]*\)")


def load(path: Path | None = None, name: str = "icd10cm") -> Terminology:
    """Load the bundled ICD-10-CM release (`path` is accepted for the loader signature, unused)."""
    import simple_icd_10_cm as cm  # parses a 10 MB XML at import (~3 s): only when asked

    concepts: list[Concept] = []
    for code in cm.get_all_codes(with_dots=True):
        if cm.is_chapter(code) or cm.is_block(code):
            continue
        concepts.append(_concept(cm, code))
    return Terminology(name=name, format=FORMAT, version=_release(cm), concepts=concepts, system=FORMAT_SYSTEMS[FORMAT])


def _concept(cm, code: str) -> Concept:
    ancestors = cm.get_ancestors(code)  # nearest first, up to the chapter
    blocks = [a for a in ancestors if cm.is_block(a)]
    chapters = [a for a in ancestors if cm.is_chapter(a)]
    parent = cm.get_parent(code)
    billable = cm.is_leaf(code)
    return Concept(
        code=code,
        display=cm.get_description(code),
        synonyms=_synonyms(cm, code),
        parents=[] if cm.is_block(parent) else [parent],
        attributes={
            "billable": billable,
            "kind": "category" if cm.is_category(code) else "subcategory",
            "block": blocks[0] if blocks else None,
            "chapter": chapters[0] if chapters else None,
        },
    )


def _synonyms(cm, code: str) -> list[str]:
    # Inclusion terms are the tabular list's own synonyms ("diabetes NOS"); "includes" notes list
    # conditions classified to the code. Both are phrases a source system may use.
    terms = [t.strip() for t in list(cm.get_inclusion_term(code)) + list(cm.get_includes(code)) if t and t.strip()]
    bare = [_without_modifiers(t) for t in [cm.get_description(code), *terms]]
    return terms + [b for b in bare if b]


def _without_modifiers(term: str) -> str | None:
    """The term without its parenthesised nonessential modifiers, when that differs."""
    bare = _MODIFIERS.sub("", term).strip(" ,")
    return bare if bare and bare != term else None


def _release(cm) -> str:
    data_files = sorted((Path(cm.__file__).parent / "data").glob("icd10c*-tabular-*.xml"))
    stem = data_files[0].stem if data_files else ""
    year = stem.rsplit("-", 1)[-1] if stem else "unknown"
    return f"{year} (simple-icd-10-cm {package_version('simple-icd-10-cm')}, crosswalk loader {LOADER_REVISION})"
