"""Column names as words: split snake/camel case and run-together words, expand abbreviations.

`PAT_DOB` -> "patient date of birth", `valueuom` -> "value unit of measure", `admitDt` -> "admission date".
Source systems abbreviate; target models (OMOP CDM, FHIR) spell out. The tables below hold only
abbreviations and words that are common across EHR extracts and mean one thing in a column name.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Abbreviation -> words, for column and table names (not free text: "ca", "ms" stay ambiguous there).
FIELD_ABBREVIATIONS: dict[str, str] = {
    "pat": "patient",
    "pt": "patient",
    "pts": "patient",
    "ptnt": "patient",
    "mbr": "member",
    "dob": "date of birth",
    "dod": "date of death",
    "bdate": "birth date",
    "uom": "unit of measure",
    "uoms": "unit of measure",
    "unit": "unit",
    "adm": "admission",
    "admit": "admission",
    "admt": "admission",
    "dis": "discharge",
    "dsch": "discharge",
    "disch": "discharge",
    "dc": "discharge",
    "dt": "date",
    "dte": "date",
    "dttm": "datetime",
    "dtm": "datetime",
    "ts": "timestamp",
    "tm": "time",
    "yr": "year",
    "mo": "month",
    "mon": "month",
    "id": "identifier",
    "ids": "identifier",
    "no": "number",
    "nbr": "number",
    "num": "number",
    "nr": "number",
    "cd": "code",
    "cde": "code",
    "desc": "description",
    "dsc": "description",
    "descr": "description",
    "txt": "text",
    "val": "value",
    "vl": "value",
    "amt": "amount",
    "qty": "quantity",
    "cnt": "count",
    "seq": "sequence",
    "typ": "type",
    "tp": "type",
    "stat": "status",
    "sts": "status",
    "enc": "encounter",
    "encntr": "encounter",
    "vis": "visit",
    "hosp": "hospital",
    "fac": "facility",
    "dept": "department",
    "loc": "location",
    "addr": "address",
    "zip": "zip postal code",
    "zipcode": "zip postal code",
    "st": "state",
    "cty": "city",
    "ph": "phone",
    "tel": "telephone",
    "prov": "provider",
    "phys": "physician",
    "doc": "doctor",
    "md": "physician",
    "npi": "national provider identifier",
    "dea": "drug enforcement administration number",
    "spec": "specialty",
    "specialty": "specialty",
    "dx": "diagnosis",
    "diag": "diagnosis",
    "px": "procedure",
    "proc": "procedure",
    "rx": "prescription drug",
    "med": "medication",
    "meds": "medication",
    "drg": "diagnosis related group",
    "ndc": "national drug code",
    "icd": "icd diagnosis code",
    "cpt": "cpt procedure code",
    "hcpcs": "hcpcs procedure code",
    "loinc": "loinc measurement code",
    "lab": "laboratory",
    "labs": "laboratory",
    "res": "result",
    "rslt": "result",
    "ref": "reference",
    "lo": "low",
    "hi": "high",
    "min": "minimum",
    "max": "maximum",
    "freq": "frequency",
    "dur": "duration",
    "dose": "dose",
    "strt": "start",
    "beg": "begin start",
    "stp": "stop",
    "end": "end",
    "sex": "sex gender",
    "gndr": "gender",
    "eth": "ethnicity",
    "ethn": "ethnicity",
    "lang": "language",
    "marital": "marital status",
    "ins": "insurance",
    "insur": "insurance",
    "pay": "payer",
    "pyr": "payer",
    "clm": "claim",
    "chg": "charge",
    "pd": "paid",
    "src": "source",
    "orig": "original",
    "ord": "order",
    "req": "request",
    "obs": "observation",
    "msr": "measurement",
    "meas": "measurement",
    "vs": "vital sign",
    "wt": "weight",
    "ht": "height",
    "bp": "blood pressure",
    "temp": "temperature",
    "hr": "heart rate",
    "bmi": "body mass index",
    "flg": "flag",
    "ind": "indicator",
    "yn": "indicator",
    "cat": "category",
    "grp": "group",
    "nm": "name",
    "fname": "first name",
    "lname": "last name",
    "mname": "middle name",
    "ssn": "social security number",
    "mrn": "medical record number",
    "hadm": "hospital admission",
    "icu": "intensive care unit",
    "ed": "emergency department",
    "er": "emergency room",
    "los": "length of stay",
    "org": "organization",
    "mfr": "manufacturer",
    "qual": "qualifier",
    "mod": "modifier",
    "rte": "route",
    "rt": "route",
    "sig": "instructions",
    "sup": "supply",
    "dys": "days",
    "refl": "refills",
    "vax": "vaccine",
    "imm": "immunization",
    "allerg": "allergy",
    "cond": "condition",
    "spcmn": "specimen",
    "spec_type": "specimen type",
    "ctime": "time",
}

# Source-world words -> the words OMOP CDM and FHIR use for the same thing. Appended, not replaced,
# so "admission" still matches "admitting_source" while also reaching `visit_occurrence`.
DOMAIN_SYNONYMS: dict[str, str] = {
    "admission": "visit encounter",
    "encounter": "visit",
    "visit": "encounter",
    "stay": "visit",
    "episode": "visit",
    "patient": "person",
    "member": "person patient",
    "beneficiary": "person patient",
    "subject": "person patient",
    "person": "patient",
    "diagnosis": "condition",
    "diagnoses": "condition",
    "problem": "condition",
    "condition": "diagnosis",
    "laboratory": "measurement",
    "lab": "measurement",
    "vital": "measurement",
    "result": "value measurement",
    "test": "measurement",
    "medication": "drug",
    "prescription": "drug",
    "drug": "medication",
    "dispense": "drug",
    "physician": "provider",
    "doctor": "provider",
    "caregiver": "provider",
    "clinician": "provider",
    "practitioner": "provider",
    "prescriber": "provider",
    "provider": "practitioner",
    "hospital": "care site",
    "facility": "care site",
    "ward": "care site",
    "department": "care site",
    "clinic": "care site",
    "death": "deceased",
    "died": "death",
    "deceased": "death",
    "expire": "death",
    "expired": "death",
    "insurance": "payer plan",
    "payer": "insurance",
    "sex": "gender",
    "gender": "sex",
    "unit": "unit",
    "measure": "unit",
    "discharge": "end",
    "admit": "start",
    "begin": "start",
    "stop": "end",
    "timestamp": "datetime",
    "time": "datetime",
    "note": "text",
    "report": "note",
    "zip": "location",
    "address": "location",
    "city": "location",
    "state": "location",
    "county": "location",
    "quantity": "quantity",
    "amount": "cost",
    "charge": "cost",
    "paid": "cost",
    "identifier": "id",
    "birth": "birth",
}

# Endings that close run-together column names in many systems (`itemid`, `charttime`, `dxcode`).
_SUFFIXES = (
    "id",
    "cd",
    "dt",
    "dttm",
    "num",
    "nbr",
    "no",
    "time",
    "date",
    "code",
    "type",
    "desc",
    "flag",
    "name",
    "value",
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[a-zA-Z])(?=[0-9])|(?<=[0-9])(?=[a-zA-Z])")
_WORD = re.compile(r"[A-Za-z0-9]+")


def split_identifier(name: str) -> list[str]:
    """`PAT_DOB` -> [pat, dob]; `birthDate` -> [birth, date]; `valueuom` stays whole (see `segment`)."""
    words = []
    for part in _WORD.findall(name):
        words.extend(w.lower() for w in _CAMEL.split(part) if w)
    return words


class NameReader:
    """Turns identifiers into words, segmenting run-together ones with a vocabulary.

    The vocabulary is the target model's words plus the abbreviations, so `valueuom` splits as
    `value uom` and `charttime` as `chart time` without a general-purpose dictionary.
    """

    def __init__(self, vocabulary: set[str]):
        self.vocabulary = {w for w in vocabulary if len(w) >= 2} | set(FIELD_ABBREVIATIONS) | set(DOMAIN_SYNONYMS)
        self._by_initial: dict[str, list[str]] = {}
        for word in sorted(self.vocabulary, key=lambda w: (len(w), w)):
            if word.isalpha() and len(word) >= 4:
                self._by_initial.setdefault(word[0], []).append(word)

    @lru_cache(maxsize=200_000)  # noqa: B019  (one reader per fitted suggester, lives as long)
    def words(self, name: str, synonyms: bool = True, contractions: bool | None = None) -> tuple[str, ...]:
        """Words of an identifier; a source's (`synonyms`) also gets its contractions spelled out."""
        contract = synonyms if contractions is None else contractions
        out: list[str] = []
        for token in split_identifier(name):
            for piece in self.segment(token):
                spelled = self.contraction(piece) if contract else piece
                expanded = FIELD_ABBREVIATIONS.get(piece, spelled).split()
                out.extend(expanded)
                if synonyms:
                    for word in expanded:
                        out.extend((DOMAIN_SYNONYMS.get(word) or DOMAIN_SYNONYMS.get(stem(word), "")).split())
        return tuple(dict.fromkeys(out))

    def contraction(self, token: str) -> str:
        """A vowel-dropped word spelled out from the vocabulary: `dgns` -> diagnosis, `prvdr` -> provider.

        Only for unknown tokens of 3-8 letters with no vowel after the first letter; the
        shortest vocabulary word holding the token's letters in order, with its first letter, wins.
        """
        if token in self.vocabulary or not token.isalpha() or not 3 <= len(token) <= 8:
            return token
        if any(c in "aeiou" for c in token[1:]):  # `chart` is a word, not a contraction of "character"
            return token
        for word in self._by_initial.get(token[0], ()):
            if len(token) < len(word) <= 2.5 * len(token) and _in_order(token, word):
                return word
        return token

    def segment(self, token: str) -> list[str]:
        """Split a run-together token into known words (fewest pieces), or leave it whole."""
        if token in self.vocabulary or len(token) < 5 or token.isdigit():
            return [token]
        best: list[list[str] | None] = [[]] + [None] * len(token)
        for end in range(1, len(token) + 1):
            for start in range(max(0, end - 20), end):
                piece = token[start:end]
                if best[start] is not None and piece in self.vocabulary:
                    candidate = best[start] + [piece]
                    if best[end] is None or len(candidate) < len(best[end]):
                        best[end] = candidate
        found = best[len(token)]
        if found and len(found) <= 3:
            return found
        for suffix in _SUFFIXES:  # `itemid`, `charttime`: an unknown word before a familiar ending
            if token.endswith(suffix) and len(token) - len(suffix) >= 3:
                return [*self.segment(token[: -len(suffix)]), suffix]
        return [token]


def _in_order(letters: str, word: str) -> bool:
    remaining = iter(word)
    return all(letter in remaining for letter in letters)


def stem(word: str) -> str:
    """Crude plural/verb folding, enough for field names: 'dates' -> 'date', 'admitted' -> 'admitt'."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word
