"""Clinical abbreviations learned from ICD-9-CM's paired titles, spelt out in queries.

CMS wrote every ICD-9-CM code twice: a long title ("Coronary atherosclerosis of native coronary
artery") and a short one cut to 24 characters ("Crnry athrscl natve vssl"). Legacy systems carry the
short titles, and the same clipped words turn up in problem lists and local code tables. Each word of
a short title that its long title lacks is paired with the long title's word it abbreviates (same first
letter, its letters in order); a pairing that holds across titles becomes a row of
`models/data/clinical_abbreviations.tsv`, which `Suggester` uses on queries only, and only for words
the target terminology never writes (`models.text.expand_unknown`), so a table that says "Tot" keeps
matching "Tot".

Only the training split is read (`training.datasets.is_test_code`): the benchmark's held-out codes
never teach an expansion.

    python -m training.abbreviations          # rewrites models/data/clinical_abbreviations.tsv
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from models.text import CLINICAL_ABBREVIATIONS_FILE, fold_words
from training.datasets import _data_files, is_test_code

MIN_VOTES = 1.0  # titles that must agree on an expansion ...
MIN_VOTES_SHORT = 3.0  # ... and for a word of at most 3 letters, which may stand for many ("po", "cr", "ml")
MIN_SHARE = 0.6  # of the titles where the word is clipped
_INFLECTIONS = frozenset({"s", "es", "d", "ed", "ing"})


def _abbreviates(short: str, word: str) -> bool:
    """`short` could be `word` clipped: same first letter, shorter, its letters in `word` in order; not the
    same word inflected ("disease" for "diseases", "deliver" for "delivered"), which is no abbreviation."""
    if short[0] != word[0] or len(short) >= len(word):
        return False
    if word.startswith(short) and word[len(short) :] in _INFLECTIONS:
        return False
    letters = iter(word)
    return all(letter in letters for letter in short)


def learn(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, float, int]]:
    """(short title, long title) pairs -> {clipped word: (expansion, votes, titles clipped in)}."""
    votes: dict[str, Counter] = defaultdict(Counter)
    clipped: Counter = Counter()
    for short, long in pairs:
        words = set(fold_words(long))
        for token in set(fold_words(short)) - words:
            if len(token) < 2 or not token.isalpha():
                continue
            clipped[token] += 1
            candidates = [w for w in words if _abbreviates(token, w)]
            for word in candidates:  # a clipped word that fits two long words gives each half a vote
                votes[token][word] += 1 / len(candidates)
    table = {}
    for token, counts in votes.items():
        word, n = counts.most_common(1)[0]
        if n >= (MIN_VOTES_SHORT if len(token) <= 3 else MIN_VOTES) and n / clipped[token] >= MIN_SHARE:
            table[token] = (word, round(n, 1), clipped[token])
    return table


def icd9_title_pairs() -> list[tuple[str, str]]:
    """ICD-9-CM (short, long) titles of the training split's codes (CMS's 2015 descriptions)."""
    with (_data_files() / "icd9dx2015.csv").open(newline="", encoding="latin-1") as handle:
        rows = list(csv.DictReader(handle))
    return [(row["shortdesc"], row["longdesc"]) for row in rows if not is_test_code(row["dgns_cd"])]


def write(table: dict[str, tuple[str, float, int]], path: Path = CLINICAL_ABBREVIATIONS_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle, delimiter="\t", lineterminator="\n")
        out.writerow(["abbreviation", "expansion", "votes", "clipped_in"])
        for token in sorted(table):
            out.writerow([token, *table[token]])


def main() -> None:
    table = learn(icd9_title_pairs())
    write(table)
    print(f"{len(table)} abbreviations -> {CLINICAL_ABBREVIATIONS_FILE}")


if __name__ == "__main__":
    main()
