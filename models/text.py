"""Clinical text normalisation shared by every matcher (queries and concepts alike).

Source systems abbreviate ("Malig neo bronch/lung NOS", "Cholera d/t vib cholerae", "Fx femur w/o
displ"); standard terminologies spell out. Expanding the common abbreviations on both sides lets
character n-grams and embeddings see the same words.
"""

from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from collections.abc import Collection
from functools import lru_cache
from pathlib import Path

# Multi-character tokens that stand for words in clinical text. Only unambiguous, widely used
# ones: "ca" (calcium/cancer) and "ms" (multiple sclerosis/mitral stenosis) stay as they are.
ABBREVIATIONS: dict[str, str] = {
    "d/t": "due to",
    "w/o": "without",
    "w/": "with",
    "s/p": "status post",
    "r/o": "rule out",
    "h/o": "history of",
    "b/l": "bilateral",
    "c/o": "complaining of",
    "wo": "without",
    "nos": "unspecified",
    "nec": "not elsewhere classified",
    "unsp": "unspecified",
    "unspec": "unspecified",
    "unspcf": "unspecified",
    "unspf": "unspecified",
    "oth": "other",
    "othr": "other",
    "spec": "specified",
    "spcf": "specified",
    "malig": "malignant",
    "malign": "malignant",
    "neo": "neoplasm",
    "neopl": "neoplasm",
    "neoplsm": "neoplasm",
    "ben": "benign",
    "sec": "secondary",
    "prim": "primary",
    "mets": "metastases",
    "dis": "disease",
    "dz": "disease",
    "disord": "disorder",
    "dsordr": "disorder",
    "syn": "syndrome",
    "synd": "syndrome",
    "fx": "fracture",
    "fract": "fracture",
    "inj": "injury",
    "infect": "infection",
    "inf": "infection",
    "infec": "infection",
    "chr": "chronic",
    "chron": "chronic",
    "hx": "history",
    "sx": "symptoms",
    "dx": "diagnosis",
    "tx": "treatment",
    "abn": "abnormal",
    "abnorm": "abnormal",
    "compl": "complication",
    "complic": "complication",
    "hemorr": "hemorrhage",
    "pneum": "pneumonia",
    "pneumon": "pneumonia",
    "resp": "respiratory",
    "hrt": "heart",
    "kid": "kidney",
    "ren": "renal",
    "gi": "gastrointestinal",
    "uri": "upper respiratory infection",
    "uti": "urinary tract infection",
    "htn": "hypertension",
    "hypertens": "hypertension",
    "dm": "diabetes mellitus",
    "diab": "diabetes",
    "mi": "myocardial infarction",
    "chf": "congestive heart failure",
    "copd": "chronic obstructive pulmonary disease",
    "ckd": "chronic kidney disease",
    "esrd": "end stage renal disease",
    "cva": "cerebrovascular accident",
    "tia": "transient ischemic attack",
    "gerd": "gastroesophageal reflux disease",
    "cad": "coronary artery disease",
    "afib": "atrial fibrillation",
    "dvt": "deep vein thrombosis",
    "lt": "left",
    "rt": "right",
    "bilat": "bilateral",
    "unilat": "unilateral",
    "ext": "external",
    "mult": "multiple",
    "opn": "open",
    "displ": "displaced",
    "w/dsp": "with displacement",
    "vib": "vibrio",
    "bact": "bacterial",
    "vir": "viral",
    "pois": "poisoning",
    "poison": "poisoning",
    "intox": "intoxication",
    "preg": "pregnancy",
    "pregn": "pregnancy",
    "deliv": "delivery",
    "antepart": "antepartum",
    "postpart": "postpartum",
    "cond": "condition",
    "hyperten": "hypertension",
    "fam": "family",
    "pers": "personal",
    "hist": "history",
    "intest": "intestinal",
    "intes": "intestinal",
    "bronch": "bronchus",
    "lym": "lymph",
    "nod": "node",
    "ln": "lymph node",
    "hb": "hemoglobin",
    "hgb": "hemoglobin",
    "wbc": "white blood cell",
    "rbc": "red blood cell",
    "plt": "platelets",
    "bun": "urea nitrogen",
    "alt": "alanine aminotransferase",
    "ast": "aspartate aminotransferase",
    "ser": "serum",
    "bld": "blood",
    "ur": "urine",
    "plas": "plasma",
    "qnt": "quantitative",
    "conc": "concentration",
    # ICD-9-CM short titles: vowel-dropped words that legacy feeds still send.
    "dmii": "diabetes mellitus type 2",
    "dmi": "diabetes mellitus type 1",
    "cmp": "complication",
    "uncntr": "uncontrolled",
    "uncntrld": "uncontrolled",
    "crnry": "coronary",
    "athrscl": "atherosclerosis",
    "natve": "native",
    "vssl": "vessel",
    "abdmnal": "abdominal",
    "urin": "urinary",
    "obstruct": "obstruction",
    "clstrdium": "clostridium",
    "dfcile": "difficile",
    "migrne": "migraine",
    "mgrn": "migraine",
    "ntrc": "intractable",
    "anticoagul": "anticoagulants",
    "hyprtsn": "hypertension",
    "cerebrl": "cerebral",
    "pulm": "pulmonary",
    "arthrop": "arthropathy",
    "hyperlip": "hyperlipidemia",
}

# Local lab names -> LOINC's words, for queries only (they never enter NORMALIZER_VERSION: no cache
# depends on them). A word is expanded only where the target table never uses it (`expand_unknown`),
# so a LOINC table whose short names say "Tot" keeps matching "Tot" literally. Chosen from the lab
# train split's words that the LOINC names lack; ambiguous ones stay out ("phos": phosphate or
# phosphatase; "neut": neutrophils or neutralization; "mono": monocytes or mononucleosis).
LAB_ABBREVIATIONS: dict[str, str] = {
    "tot": "total",
    "sat": "saturation",
    "actvty": "activity",
    "act": "activity",
    "hep": "hepatitis",
    "susc": "susceptibility",
    "suscept": "susceptibility",
    "grav": "gravity",
    "anticoag": "anticoagulant",
    "periton": "peritoneal",
    "pericard": "pericardial",
    "protime": "prothrombin time",
    "ckmb": "creatine kinase mb",
    "cpk": "creatine kinase",
    "ck": "creatine kinase",
    "coag": "coagulation",
    "lipo": "lipoprotein",
    "apolipoprot": "apolipoprotein",
    "salmonel": "salmonella",
    "tetracyclin": "tetracycline",
    "procainamid": "procainamide",
    "cr": "creatinine",
    "creat": "creatinine",
    "antibody": "ab",
    "antibodies": "ab",
    "antigen": "ag",
    "antigens": "ag",
    "uric": "urate",
    "flu": "influenza",
    "histo": "histoplasma",
    "myelo": "myelocytes",
    "enceph": "encephalitis",
    "interp": "interpretation",
    "therap": "therapeutic",
    "retic": "reticulocytes",
    "retics": "reticulocytes",
    "eos": "eosinophils",
    "baso": "basophils",
    "lymphs": "lymphocytes",
    "bili": "bilirubin",
    "chol": "cholesterol",
    "trig": "triglyceride",
    "trigs": "triglyceride",
    "glu": "glucose",
    "alb": "albumin",
    "alk": "alkaline",
    "sed": "sedimentation",
    "fib": "fibrinogen",
    "org": "organism",  # "Final Org 2", "Predom Org": the organism a culture grew ...
    "orgs": "organisms",
    "src": "source",  # of a specimen: "Enterovirus Src"
    # The analytes every lab dictionary abbreviates, by the names LOINC gives them (a table whose short
    # names use the abbreviation keeps it: see above).
    "tsh": "thyrotropin",
    "ft4": "thyroxine free",
    "ft3": "triiodothyronine free",
    "tbg": "thyroxine binding globulin",
    "tpo": "thyroperoxidase",
    "psa": "prostate specific ag",
    "cea": "carcinoembryonic ag",
    "afp": "alpha 1 fetoprotein",
    "hcg": "choriogonadotropin",
    "ldh": "lactate dehydrogenase",
    "ggt": "gamma glutamyl transferase",
    "crp": "c reactive protein",
    "esr": "erythrocyte sedimentation rate",
    "hct": "hematocrit",
    "mcv": "erythrocyte mean corpuscular volume",
    "mch": "erythrocyte mean corpuscular hemoglobin",
    "mchc": "erythrocyte mean corpuscular hemoglobin concentration",
    "rdw": "erythrocyte distribution width",
    "mpv": "platelet mean volume",
    "a1c": "hemoglobin a1c",
    "hba1c": "hemoglobin a1c",
    "hgba1c": "hemoglobin a1c",
    "bnp": "natriuretic peptide b",
    "5hiaa": "5 hydroxyindoleacetate",
    "fio2": "oxygen inspired gas",
    "pco2": "carbon dioxide partial pressure",
    "po2": "oxygen partial pressure",
    "hco3": "bicarbonate",
    "tibc": "iron binding capacity",
    "pth": "parathyrin",
    "acth": "corticotropin",
    "lh": "lutropin",
    "fsh": "follitropin",
    "dhea": "dehydroepiandrosterone",
    "ana": "nuclear ab",
    "ferr": "ferritin",
    "ptt": "aptt",
    "vit": "vitamin",
    "monos": "monocytes",
    "basos": "basophils",
    # Whole analyte names that LOINC spells otherwise (matched as phrases, after the words above).
    "thyroid stimulating hormone": "thyrotropin",
    "blood urea nitrogen": "urea nitrogen",
    "white blood cell": "leukocytes",
    "white blood cells": "leukocytes",
    "red blood cell": "erythrocytes",
    "red blood cells": "erythrocytes",
    "partial thromboplastin time": "aptt",
    "free calcium": "calcium ionized",
    "ionized calcium": "calcium ionized",
    "total co2": "carbon dioxide total",
    "hepatitis b surface antigen": "hepatitis b virus surface ag",
    "egfr": "glomerular filtration rate",  # estimated, as every chemistry panel reports it
    "25 oh": "25 hydroxy",  # "Vitamin D, 25-OH"
    # vitamin D as dictionaries name it, and as LOINC does (a public table: "Calcidiol"; a release:
    # "25-Hydroxyvitamin D3"), so that "Vitamin" alone does not pull vitamin B12 ahead
    "vitamin d 25 oh": "calcidiol 25 hydroxyvitamin d",
    "25 oh vitamin d": "calcidiol 25 hydroxyvitamin d",
    "vitamin d 25 hydroxy": "calcidiol 25 hydroxyvitamin d",
    "25 hydroxy vitamin d": "calcidiol 25 hydroxyvitamin d",
    # the lipoprotein a cholesterol is carried in, as LOINC words it ("Cholesterol in LDL")
    "ldl cholesterol": "cholesterol in ldl",
    "hdl cholesterol": "cholesterol in hdl",
    "non hdl cholesterol": "cholesterol non hdl",
    "collection site": "specimen source",
    "alkaline phos": "alkaline phosphatase",  # "phos" alone may be phosphate ("Phos (CSH)")
    "acid phos": "acid phosphatase",
    "organism acid": "organic acid",  # ... but "Org Acid Ur" is an organic acid: "org" read back
    "organism acids": "organic acids",
}

# A lab dictionary's bare mnemonics: a name that is nothing but one of these (specimen words and the
# analyte's form aside: "UA-PRO", "NEUT%", "CK, TOTAL", "T3, FREE") means the analyte, even where the
# table writes the letters in other names ("Ca-I", "CA Titr"). Inside a longer name they stay as
# written: "mg" there is a unit, "CA 125" an antigen.
LAB_MNEMONICS: dict[str, str] = {
    "na": "sodium",
    "k": "potassium",
    "cl": "chloride",
    "ca": "calcium",
    "mg": "magnesium",
    "phos": "phosphate",
    "fe": "iron",
    "tbil": "bilirubin total",
    "dbil": "bilirubin direct",
    "ibil": "bilirubin indirect",
    "tp": "protein total",
    "ica": "calcium ionized",
    "lact": "lactate",
    "pro": "protein",
    "ket": "ketones",
    "sg": "specific gravity",
    "alkp": "alkaline phosphatase",
    "alp": "alkaline phosphatase",
    "amy": "amylase",
    "lipa": "lipase",
    "fol": "folate",
    "neut": "neutrophils",
    "neuts": "neutrophils",
    "lymph": "lymphocytes",
    "lymphs": "lymphocytes",
    "ck": "creatine kinase",
    "cpk": "creatine kinase",
    "t3": "triiodothyronine",  # "T3, FREE": the table's "T3Free" is one word, "T4 Free" two
    "t4": "thyroxine",
    "alb": "albumin",  # bare, not the "Alb CSF/Alb SerPl" ratio a table's short names write
}


# Phrases an older terminology words differently from a newer one (ICD-9-CM "late effect of" is
# ICD-10-CM's "sequela of"), applied after abbreviations are expanded.
PHRASES: dict[str, str] = {
    "late effects of": "sequela of",
    "late effect of": "sequela of",
    "late effects": "sequela",
    "late effect": "sequela",
    "mal neo": "malignant neoplasm",  # ICD-9-CM short titles; "mal" alone may be "grand mal"
    "mal neoplasm": "malignant neoplasm",
}
_PHRASE = re.compile(r"\b(" + "|".join(map(re.escape, sorted(PHRASES, key=len, reverse=True))) + r")\b")
# Caches key their files on this: editing a table above re-keys them, and only then do cached
# strings get normalised (and re-encoded where they changed).
_TABLES = repr((sorted(ABBREVIATIONS.items()), sorted(PHRASES.items())))
NORMALIZER_VERSION = hashlib.sha256(_TABLES.encode()).hexdigest()[:8]
_TOKEN = re.compile(r"[a-z0-9]+(?:/[a-z0-9]*)?|[^\sa-z0-9]")
_PUNCT = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")


def fold(text: str) -> str:
    """Lower-case ASCII: strips accents so 'Ménière' and 'Meniere' are one word."""
    text = unicodedata.normalize("NFKD", text)
    return text.encode("ascii", "ignore").decode("ascii").lower()


@lru_cache(maxsize=65536)
def normalize(text: str) -> str:
    """Folded text with abbreviations expanded and punctuation reduced to single spaces."""
    tokens = _TOKEN.findall(fold(text))
    words = [_expand(token) for token in tokens]
    joined = _SPACES.sub(" ", _PUNCT.sub(" ", " ".join(words))).strip()
    return _PHRASE.sub(lambda match: PHRASES[match.group(1)], joined)


def _expand(token: str) -> str:
    if token in ABBREVIATIONS:
        return ABBREVIATIONS[token]
    if "/" in token:  # "bronch/lung": two words, each may be abbreviated
        return " ".join(ABBREVIATIONS.get(part, part) for part in token.split("/") if part)
    return token


CLINICAL_ABBREVIATIONS_FILE = Path(__file__).parent / "data" / "clinical_abbreviations.tsv"


@lru_cache(maxsize=1)
def clinical_abbreviations() -> dict[str, str]:
    """Clipped clinical words -> the word, learned from ICD-9-CM's short and long titles
    (`training.abbreviations`); for queries only, through `expand_unknown`, like `LAB_ABBREVIATIONS`."""
    if not CLINICAL_ABBREVIATIONS_FILE.exists():
        return {}
    with CLINICAL_ABBREVIATIONS_FILE.open(newline="") as handle:
        return {row["abbreviation"]: row["expansion"] for row in csv.DictReader(handle, delimiter="\t")}


def expand_unknown(text: str, known: frozenset[str], table: dict[str, str]) -> str:
    """`text` with each word of `table` that `known` lacks spelt out (words split as `normalize` splits),
    then each of its phrases (keys with a space) that `known` lacks."""
    words = fold_words(text)
    expanded = " ".join(table[word] if word in table and word not in known else word for word in words)
    for phrase in _phrases(table):
        if phrase not in known and f" {phrase} " in f" {expanded} ":
            expanded = f" {expanded} ".replace(f" {phrase} ", f" {table[phrase]} ").strip()
    return expanded if expanded != " ".join(words) else text


def _phrases(table: dict[str, str]) -> list[str]:
    """The table's multi-word keys, longest first (so "white blood cells" goes before "white blood cell")."""
    held = _PHRASES_OF.get(id(table))
    if held is None or held[0] is not table:  # the table is held, so its id cannot be reused
        held = _PHRASES_OF[id(table)] = (table, sorted((k for k in table if " " in k), key=len, reverse=True))
    return held[1]


_PHRASES_OF: dict[int, tuple[dict[str, str], list[str]]] = {}


def known_phrases(folded_texts: list[str], table: dict[str, str]) -> frozenset[str]:
    """The multi-word keys of `table` that these texts (folded words joined by spaces) write themselves."""
    phrases = _phrases(table)
    if not phrases:
        return frozenset()
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, phrases)) + r")\b")
    return frozenset(match for text in folded_texts for match in pattern.findall(text))


# A reference laboratory's order name says which test it adds when the first is abnormal ("TSH
# W/REFLEX TO FT4", "HBsAg W/REFL CONFIRM"): the result is the first test's, and the reflexed
# analyte's name only pulled its codes ahead.
_REFLEX = re.compile(r"\s*[,;(]?\s*\b(w/|with\s+)refl(ex)?\b.*$", re.IGNORECASE)


def without_reflex(text: str) -> str:
    """The test a lab name orders, without its reflex clause."""
    stripped = _REFLEX.sub("", text)
    return stripped if stripped.strip() else text


# LOINC names an acid by its anion ("Lactate", "Valproate", "Methylmalonate") where lab dictionaries
# write the acid ("Lactic Acid", "Valproic Acid").
_IC_ACID = re.compile(r"\b([a-z0-9]+)ic acid\b")


def acids_as_anions(text: str, anions: frozenset[str], acids: frozenset[str]) -> str:
    """`text` with each "<stem>ic acid" spelt as the table's "<stem>ate", where the table writes that
    anion (`anions`: its words ending in "ate") and never the acid itself (`acids`: words it writes
    before "acid", so "Nalidixic acid" stays)."""
    if "acid" not in text.casefold():
        return text
    folded = " ".join(fold_words(text))

    def anion(match: re.Match) -> str:
        stem = match.group(1)
        return f"{stem}ate" if f"{stem}ate" in anions and f"{stem}ic" not in acids else match.group(0)

    spelt = _IC_ACID.sub(anion, folded)
    return spelt if spelt != folded else text


def table_acids(words: Collection[str], folded_texts: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The anions (its `words` ending in "ate") and acids (words before "acid") a table writes."""
    acids = {m.group(1) for text in folded_texts for m in re.finditer(r"\b([a-z0-9]+) acid\b", text)}
    return frozenset(w for w in words if w.endswith("ate")), frozenset(acids)


def fold_words(text: str) -> list[str]:
    """Folded words, punctuation dropped, no abbreviation expanded."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", fold(text))).split()
