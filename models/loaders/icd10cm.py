"""ICD-10-CM from the `simple-icd-10-cm` package: the CDC tabular list bundled with it (2026).

Chapters and blocks are not codes anyone maps to, so they become attributes (`chapter`, `block`)
of the codes beneath them instead of concepts. Leaves are the billable codes.
"""

from __future__ import annotations

from importlib.metadata import version as package_version
from pathlib import Path

from models.terminology import Concept, Terminology

FORMAT = "icd10cm"


def load(path: Path | None = None, name: str = "icd10cm") -> Terminology:
    """Load the bundled ICD-10-CM release (`path` is accepted for the loader signature, unused)."""
    import simple_icd_10_cm as cm  # parses a 10 MB XML at import (~3 s): only when asked

    concepts: list[Concept] = []
    for code in cm.get_all_codes(with_dots=True):
        if cm.is_chapter(code) or cm.is_block(code):
            continue
        concepts.append(_concept(cm, code))
    return Terminology(name=name, format=FORMAT, version=_release(cm), concepts=concepts)


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
    terms = list(cm.get_inclusion_term(code)) + list(cm.get_includes(code))
    return [t.strip() for t in terms if t and t.strip()]


def _release(cm) -> str:
    data_files = sorted((Path(cm.__file__).parent / "data").glob("icd10c*-tabular-*.xml"))
    stem = data_files[0].stem if data_files else ""
    year = stem.rsplit("-", 1)[-1] if stem else "unknown"
    return f"{year} (simple-icd-10-cm {package_version('simple-icd-10-cm')})"
