"""Clipped words learned from paired short and long titles, and the shipped table they make."""

from __future__ import annotations

from models.text import clinical_abbreviations, expand_unknown
from training.abbreviations import learn

PAIRS = [
    ("Crnry athrscl natve vssl", "Coronary atherosclerosis of native coronary artery"),
    ("Ac crnry syndrome", "Acute coronary syndrome"),
    ("Chr kidney dis", "Chronic kidney disease"),
    ("Chr hrt dis", "Chronic heart disease"),
    ("Chr ac hrt dis", "Chronic acute heart disease"),
    ("Ac pain", "Acute pain"),
    ("Hrt flr", "Heart failure"),
]


def test_a_clipped_word_is_paired_with_the_long_word_it_abbreviates():
    table = {word: expansion for word, (expansion, _, _) in learn(PAIRS).items()}
    assert table["crnry"] == "coronary" and table["athrscl"] == "atherosclerosis"  # once is enough for these
    assert (
        table["chr"] == "chronic" and table["hrt"] == "heart" and table["ac"] == "acute" and table["dis"] == "disease"
    )
    assert "flr" not in table  # three letters or fewer may stand for many words: three titles must agree
    assert "syndrome" not in table and "kidney" not in table  # written out in both titles: nothing to learn


def test_an_inflected_word_is_no_abbreviation():
    pairs = [("Chr disease", "Chronic diseases"), ("Disease site", "Diseases of other sites")] * 3
    table = learn(pairs)
    assert "disease" not in table and "site" not in table and table["chr"][0] == "chronic"


def test_an_ambiguous_or_inconsistent_word_is_left_out():
    # "pr" fits "pressure" and "primary" alike in one title, and another title spells it otherwise
    pairs = [("Pr ulcer pr site", "Pressure ulcer primary site"), ("Pr gout", "Gout pr")]
    assert "pr" not in learn(pairs)


def test_the_shipped_table_spells_out_only_words_the_target_never_writes():
    table = clinical_abbreviations()
    assert table["athrscl"] == "atherosclerosis" and table["chr"] == "chronic"
    known = frozenset({"chr"})  # a table that itself writes "chr" keeps matching it literally
    assert expand_unknown("Chr athrscl", known, table) == "chr atherosclerosis"
