"""What a lab test measures, along LOINC's axes, read from a source item and from a LOINC concept.

A lab mapper does not match "Plt ct" + unit "10*3/uL" by name alone: the unit says the property is
a number concentration, so every candidate that measures a mass concentration is wrong, however
close its name. Here both sides are reduced to coarse axis values (system, property, timing, scale,
method) and compared: an axis the source states and the candidate contradicts is evidence against
the candidate; an axis they share is evidence for it. Context columns (specimen, unit) feed these
axes only: they never take part in name matching.

A candidate's axes come from its LOINC parts when the table has them, else from its names (the long
common name's "[Mass/volume]", "in Serum or Plasma", "24 hour", "by Immunoassay"). Concepts of
terminologies without axes (ICD-10-CM, SNOMED CT ...) have none, so every axis feature is 0 for them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# Coarse system groups: local names say "SerPl", "Ser", "Plas" for one and the same LOINC choice
# (serum and plasma are interchangeable for most analytes), but blood, urine and CSF are not.
_SYSTEM_WORDS = {
    "serpl": "serpl",
    "ser": "serpl",
    "serum": "serpl",
    "pl": "serpl",
    "plas": "serpl",
    "plasma": "serpl",
    "plasm": "serpl",
    "ppp": "serpl",
    "bld": "bld",
    "blood": "bld",
    "wb": "bld",
    "blda": "bld",
    "bldv": "bld",
    "bldc": "bld",
    "arterial": "bld",
    "venous": "bld",
    "capillary": "bld",
    "abg": "bld",
    "vbg": "bld",
    "ur": "ur",
    "urine": "ur",
    "urn": "ur",
    "ua": "ur",
    "csf": "csf",
    "cerebral": "csf",
    "cerebrospinal": "csf",
    "spinal": "csf",
    "stool": "stool",
    "stl": "stool",
    "fecal": "stool",
    "feces": "stool",
    "faeces": "stool",
    "fld": "fluid",
    "fluid": "fluid",
    "pleural": "fluid",
    "plr": "fluid",
    "peritoneal": "fluid",
    "prt": "fluid",
    "synovial": "fluid",
    "snv": "fluid",
    "pericardial": "fluid",
    "ascites": "fluid",
    "amniotic": "amnio",
    "amn": "amnio",
    "amnio": "amnio",
    "semen": "semen",
    "smn": "semen",
    "sweat": "sweat",
    "saliva": "resp",
    "oral": "resp",  # LOINC files saliva under respiratory specimens
    "nasopharyngeal": "resp",
    "nasopharynx": "resp",
    "nph": "resp",
    "np": "resp",
    "nasal": "resp",
    "nose": "resp",
    "throat": "resp",
    "thrt": "resp",
    "oropharyngeal": "resp",
    "sputum": "resp",
    "bal": "resp",
    "bronchial": "resp",
    "respiratory": "resp",
    "turbinate": "resp",
    "nares": "resp",
    "rbc": "bld",
    "erythrocytes": "bld",
    "marrow": "marrow",
    "mar": "marrow",  # LOINC's SYSTEM "Bone mar"
    "tissue": "tissue",
    "tiss": "tissue",
}
# Finer specimens inside a group, where LOINC codes differ by them: a SARS-CoV-2 test "in Nasopharynx"
# is another code than one "in Respiratory specimen", and "pH of Arterial blood" than "pH of Blood".
# A word not listed is its group's generic value.
_FINE_SPECIMENS = {
    "nasopharyngeal": "nph",
    "nasopharynx": "nph",
    "nph": "nph",
    "np": "nph",
    "nasal": "nose",
    "nose": "nose",
    "nares": "nose",
    "turbinate": "nose",
    "throat": "throat",
    "thrt": "throat",
    "oropharyngeal": "throat",
    "saliva": "saliva",
    "oral": "saliva",
    "sputum": "lower",
    "bal": "lower",
    "bronchial": "lower",
    "arterial": "blda",
    "blda": "blda",
    "abg": "blda",
    "venous": "bldv",
    "bldv": "bldv",
    "vbg": "bldv",
    "capillary": "bldc",
    "bldc": "bldc",
}
# A very specimen's group ("blda" -> "bld"): two different ones of one group are two different draws.
_FINE_GROUP = {fine: _SYSTEM_WORDS[word] for word, fine in _FINE_SPECIMENS.items() if word in _SYSTEM_WORDS}
# Unit -> the LOINC properties it can measure (lower case, spaces removed; UCUM and local spellings).
_MASS = "mcnc"
_SUBST = "scnc"
_NUMBER = "ncnc"
_CATALYTIC = "ccnc"
_ARBITRARY = "acnc"
_RATIOS = frozenset({"ratio", "mrto", "srto", "nrto"})
_FRACTION = ("mfr", "nfr", "vfr", "sfr", "fr", "ratio", "mrto", "srto", "nrto")
_MASS_UNITS = r"(m|u|mc|n|p|k)?g/(d|m|c|u)?l|(m|u|mc|n|p)?g/ml|g/l|mg/l|mgdl"
_SUBST_UNITS = r"(m|u|mc|n|p|f)?mol/(d|m)?l|(m|u)?eq/l|meq/l|mosm/l"
_NUMBER_UNITS = (
    r"(x?10(\*|\^|e)?\d+|k|m|thou|thousand|mill|million|cells|copies|#)?/(u|mc|n|m)?l"
    r"|.*/mm3|.*/cu?mm"  # /cmm: per cubic millimetre ("THOU/CMM")
)
# Per microscope field: a count per area (LOINC's Naric), never per volume.
_AREA_UNITS = r"(#|cells)?/\[?(hpf|lpf)\]?"
_UNIT_PROPERTIES: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (re.compile(rf"^({_MASS_UNITS})$"), (_MASS, "susc")),  # an MIC is reported in ug/mL
    (re.compile(rf"^({_SUBST_UNITS})$"), (_SUBST,)),
    (re.compile(r"^(%|percent|pct|\{percent\})$"), _FRACTION),
    (re.compile(rf"^({_NUMBER_UNITS})$"), (_NUMBER, "naric")),
    (re.compile(rf"^({_AREA_UNITS})$"), ("naric",)),
    (re.compile(r"^(m|k|u|mc)?(iu|u|units?|\[iu\])/(m|d)?l$"), (_CATALYTIC, _ARBITRARY)),
    # Assay-defined units (AU, BAU, RU, EU, ELU per mL; "index"): arbitrary concentration, never enzymatic.
    (re.compile(r"^(\{?(a|ba|r|e|el|ar)u\}?/(m|d)?l|index|\{index\}|\{index_val\})$"), (_ARBITRARY,)),
    (re.compile(r"^(log|\{log\}|\{log_)"), ("lacnc", "lncnc")),  # a viral load in log units or log copies
    (re.compile(r"^(fl|\[fl\]|um3)$"), ("entvol",)),  # a cell's volume (MCV)
    (re.compile(r"^(pg|\[pg\])$"), ("entmass",)),  # a cell's mass (MCH)
    (re.compile(r"^(mm/h|mm/hr|mm/\(h\))$"), ("vel",)),  # sedimentation rate
    (re.compile(r"^ml/min/(1\.73m2|\{1\.73_m2\}|1\.73m\^2|1\.73sqm|bsa)$"), ("arvrat",)),  # a GFR per body surface
    (re.compile(r"^.*(/24h(rs?|ours?)?|/\(24\.h\)|/tv|/d|/day)$"), ("mrat", "srat", "vrat", "rat")),
    (re.compile(r"^(s|sec|seconds?|min)$"), ("time",)),
    (re.compile(r"^(titer|\{titer\})$"), ("titr",)),
    (re.compile(r"^(mosm/kg|mosmol/kg|mosm/kg\[h2o\])$"), ("osmol",)),
    (re.compile(r"^(mmhg|mm\[hg\])$"), ("pres", "ppres")),
    (re.compile(r"^(ratio|\{ratio\})$"), _RATIOS),
]
# LOINC long names write the property in brackets.
_BRACKET_PROPERTIES = {
    "mass/volume": _MASS,
    "moles/volume": _SUBST,
    "#/volume": _NUMBER,
    "enzymatic activity/volume": _CATALYTIC,
    "units/volume": _ARBITRARY,
    "mass/time": "mrat",
    "moles/time": "srat",
    "titer": "titr",
    "presence": "prthr",
    "ratio": "ratio",
    "mass ratio": "mrto",
    "molar ratio": "srto",
    "volume fraction": "vfr",
    "mass fraction": "mfr",
    "time": "time",
    "pressure": "pres",
    "partial pressure": "ppres",
    "susceptibility": "susc",
    "identifier": "prid",
    "#/area": "naric",
    "osmolality": "osmol",
    "entitic volume": "entvol",
    "entitic mass": "entmass",
    "velocity": "vel",
    "volume rate/area": "arvrat",
    "log #/volume": "lncnc",
    "log units/volume": "lacnc",
}
# Long names that write no bracket, by what they measure, as their PROPERTY part says.
_NAMED_PROPERTIES = {
    "ph": "lscnc",
    "specific gravity": "rden",
    "osmolality": "osmol",
    "appearance": "aper",
    "color": "type",
}
_PROPERTY_GROUPS = {"pprs": "ppres", "prid": "prid", "mrat": "mrat", "srat": "srat"}
_ORDINAL = frozenset("ord pos neg positive negative presence detected screen scrn qual qualitative".split())
_NOMINAL = frozenset("nom identified id isolate type typing organism".split())
_QUANTITATIVE = frozenset("qn quant quantitative level conc count ct".split())
_TIMED = frozenset("24h 24hr 24hrs tv timed".split())
_METHOD_WORDS = {
    "eia": "ia",
    "elisa": "ia",
    "ia": "ia",
    "cia": "ia",
    "immunoassay": "ia",
    "fia": "ia",
    "ria": "ia",
    "pcr": "naa",
    "naa": "naa",
    "rt-pcr": "naa",
    "amplification": "naa",
    "probe": "naa",
    "culture": "culture",
    "cult": "culture",
    "cx": "culture",
    "mic": "mic",
    "etest": "mic",
    "ms": "ms",
    "lc-ms/ms": "ms",
    "ms/ms": "ms",
    "lc/ms/ms": "ms",
    "gc-ms": "ms",
    "chromatography": "ms",
    "ifa": "if",
    "immunofluorescence": "if",
    "electrophoresis": "ep",
    "ep": "ep",
    "manual": "manual",
    "automated": "auto",
    "auto": "auto",
    "estimated": "calc",
    "calculated": "calc",
    "calculation": "calc",  # LOINC's long names: "Cholesterol in LDL ... by calculation"
    "calc": "calc",
    "nt": "nt",
    "neutralization": "nt",
    "ihc": "ihc",
    "immune": "ihc",
    "stain": "stain",
    "microscopy": "stain",
}
_METHOD_TYPES = {
    "ia": "ia",
    "probe.amp.tar": "naa",
    "naa": "naa",
    "culture": "culture",
    "mic": "mic",
    "confirm": None,
    "screen": None,
    "ifa": "if",
    "if": "if",
    "electrophoresis": "ep",
    "automated count": "auto",
    "manual count": "manual",
    "calculated": "calc",
    "estimated": "calc",
    "neut": "nt",
    "lc/ms/ms": "ms",
    "gc/ms": "ms",
    "ms": "ms",
    "ihc": "ihc",
}
# The form of an analyte a name states: free against total thyroxine, testosterone, PSA, cortisol;
# ionized against total calcium. LOINC writes it in the component ("Thyroxine (T4) free",
# "Calcium.ionized", "Bilirubin.total"); a total analyte often says nothing ("Testosterone").
_FORMS = {"free": "free", "ft4": "free", "ft3": "free", "ionized": "ionized", "ionised": "ionized", "total": "total"}
FORM_WORDS = frozenset(_FORMS) - {"ft4", "ft3"}  # words that state a form and nothing else ("FT4" names the analyte)
_WORDS = re.compile(r"[a-z0-9µ#%*^./\-\[\]{}]+")
AXES = ("system", "property", "time", "scale", "method")
AXIS_FEATURES = 4


@dataclass(frozen=True)
class Axes:
    """Coarse LOINC axis values; empty = not stated."""

    system: frozenset[str] = frozenset()
    specimen: frozenset[str] = frozenset()  # the finer specimens within the system groups
    unlikely: frozenset[str] = frozenset()  # system groups the source allows but a mapper would not pick
    property: frozenset[str] = frozenset()
    time: str = ""
    scale: str = ""
    method: str = ""
    form: str = ""  # the analyte's form: "free", "ionized", "total" (a concept without one: "")

    def stated(self) -> bool:
        return bool(self.system or self.property or self.time or self.scale or self.method)


NO_AXES = Axes()


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.casefold())


def _specimen_words(words: list[str]) -> list[str]:
    # Compound spellings: "Bld-Hemo", "Ur/24h", LOINC's "Ser/Plas^Donor" are split into their parts.
    found = []
    for word, after in zip(words, [*words[1:], ""]):
        if after.startswith("cell"):  # "Plasma cells", "Red blood cells": the analyte, not the specimen
            continue
        found += [part for part in re.split(r"[-/.^+]", word) if part in _SYSTEM_WORDS]
    return found


def specimen_group(part: str) -> str | None:
    """The system group one part of a word names ("SerPl", "Ur" in "Tetracycline-Ur"), or None."""
    return _SYSTEM_WORDS.get(part.casefold())


def very_specimen(part: str) -> str | None:
    """The very specimen one word names within its group ("BldV" -> "bldv"), or None."""
    return _FINE_SPECIMENS.get(part.casefold())


def _without_generic_fluid(groups: frozenset[str]) -> frozenset[str]:
    # "Cerebrospinal fluid", "Amniotic fluid": the word "fluid" is no second specimen beside the first
    return groups - {"fluid"} if len(groups) > 1 else groups


def _specimens(words: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The system groups these words name, and the specimens at the finest level both sides can say
    (one value per group).

    Within a group a specific specimen ("nasopharyngeal") replaces the group's generic value
    ("respiratory"); a source that lists several specific specimens of one group ("nasal swab;
    nasopharyngeal swab; oropharyngeal swab") means the generic one, as LOINC's "Respiratory specimen"
    does, and so does one that names several groups ("serum; plasma; whole blood": "Ser/Plas/Bld").
    """
    found = _specimen_words(words)
    groups = _without_generic_fluid(frozenset(_SYSTEM_WORDS[w] for w in found))
    by_group: dict[str, set[str]] = {}
    for word in found:
        group = _SYSTEM_WORDS[word]
        if group in groups:
            by_group.setdefault(group, set()).add(_FINE_SPECIMENS.get(word, group))
    fine = set()
    for group, values in by_group.items():
        specific = values - {group}
        fine.add(specific.pop() if len(specific) == 1 and len(by_group) == 1 else group)
    return groups, frozenset(fine)


# What a reference laboratory writes beside a unit, not part of it: "mg/dL (calc)", "mcg/mL FEU".
_UNIT_NOTES = re.compile(r"\([^)]*\)|\b(feu|ddu)\b")


def unit_properties(unit: str) -> frozenset[str]:
    # casefold turns the micro sign into a Greek mu: both are "u", as UCUM writes it
    key = _UNIT_NOTES.sub("", unit.casefold()).replace(" ", "").replace("\u03bc", "u").replace("\u00b5", "u")
    for pattern, properties in _UNIT_PROPERTIES:
        if pattern.match(key):
            return frozenset(properties)
    return frozenset()


# A specimen column that says only "Blood" names where the sample was drawn, not what the lab measured
# in: a chemistry analyte drawn as blood is measured in serum or plasma, a blood count or gas in whole
# blood. The lab section tells which; without one neither is preferred.
_DRAWN_BLOOD = frozenset({"blood", "sample", "specimen"})
_WHOLE_BLOOD_SECTIONS = re.compile(r"hemat|haemat|\bgas|cbc|\bheme\b|\bhem\b", re.I)
_SERUM_SECTIONS = re.compile(
    r"chem|sero|immun|endocr|tox|drug|tdm|lipid|hormon|virol|infect|coag|special|\bchm\b", re.I
)


_SpecimenAxes = tuple[frozenset[str], frozenset[str], frozenset[str]]  # systems, fine specimens, unlikely


def _drawn_blood(category: str) -> _SpecimenAxes:
    """A column that says only "Blood": serum/plasma or whole blood, as the lab section suggests.

    A blood count or gas section prefers whole blood but keeps plasma (its coagulation tests are on
    platelet-poor plasma); a chemistry or serology section prefers serum/plasma and finds whole blood
    unlikely (its whole-blood tests say so in their names, or sit with the gases).
    """
    both = frozenset({"bld", "serpl"})
    if _WHOLE_BLOOD_SECTIONS.search(category):
        return both, frozenset({"bld"}), frozenset()
    if _SERUM_SECTIONS.search(category):
        return both, frozenset({"serpl"}), frozenset({"bld"})
    return both, frozenset({"drawn"}), frozenset()


def _source_system(words: list[str], column: list[str], category: str) -> _SpecimenAxes:
    """The source's system groups and fine specimens: the specimen column first, else the name."""
    if column and set(column) <= _DRAWN_BLOOD and "blood" in column:
        named, named_fine = _specimens(words)  # "Potassium, Whole Blood": the name says more than the column
        if named and named <= {"bld", "serpl"}:
            return named, named_fine, frozenset()
        return _drawn_blood(category)
    systems, fine = _specimens(column)
    if not systems:
        systems, fine = _specimens(words)
    if not systems and re.search(r"\burin|\bua\b", category, re.I):  # a urinalysis section: the specimen is urine
        systems = fine = frozenset({"ur"})
    return systems, fine, frozenset()


def _says_timed(text: str) -> bool:
    lowered = text.casefold()
    return bool(set(_words(text)) & _TIMED) or "24 hour" in lowered or "24 hr" in lowered


def source_axes(text: str, context: Mapping[str, str]) -> Axes:
    """The axes a source item states: specimen words in its name or fluid/specimen column, its unit."""
    words = _words(text)
    specimen = " ".join(v for k, v in context.items() if k.casefold() in ("fluid", "specimen", "system", "sample"))
    category = " ".join(v for k, v in context.items() if k.casefold() in ("category", "section", "department"))
    systems, fine, unlikely = _source_system(words, _words(specimen), category)
    unit = next((v for k, v in context.items() if k.casefold() in ("unit", "units", "uom")), "")
    properties = unit_properties(unit) if unit else frozenset()
    bag = set(words)
    if not properties and bag & {"ratio", "ratios"}:  # "BUN/Creatinine Ratio": a ratio whatever its unit
        properties = _RATIOS
    rate = bool(properties & {"mrat", "srat"})
    # A timed collection is said in the name ("Creatinine 24H Ur") or the fluid column ("24 Hr Urine").
    timed = rate or _says_timed(text) or _says_timed(specimen)
    # A concentration unit means a single specimen (point in time); no unit and no words: unstated.
    time = "24h" if timed else "pt" if properties & {_MASS, _SUBST, _NUMBER, _CATALYTIC} else ""
    scale = "qn" if properties or bag & _QUANTITATIVE else "ord" if bag & _ORDINAL else ""
    scale = "nom" if not scale and bag & _NOMINAL else scale
    # "mg/dL (calc)": a reference laboratory says a calculated result in its unit
    method = next((_METHOD_WORDS[w] for w in [*words, *_words(unit)] if w in _METHOD_WORDS), "")
    return Axes(systems, fine, unlikely, properties, time, scale, method, _form(words))


def concept_axes(display: str, synonyms: list[str], attributes: Mapping[str, object]) -> Axes:
    """A LOINC concept's axes: its parts where the table has them, else read from its long name."""
    lowered = display.casefold()
    system_part = str(attributes.get("system") or "")
    # "Glucose [Mass/volume] in Blood", but "pH of Urine", "Hematocrit [Volume Fraction] of Blood".
    head = lowered.split(" by ")[0].split(" --")[0]
    in_clause = (
        lowered.rsplit(" in ", 1)[1] if " in " in lowered else head.rsplit(" of ", 1)[1] if " of " in head else ""
    )
    in_clause = in_clause.split(" by ")[0].split(" --")[0]
    system_words = _words(system_part) if system_part else _words(in_clause)
    systems, fine = _specimens(system_words)
    if system_part.casefold() in ("xxx", "") and "unspecified specimen" in (in_clause or system_part.casefold()):
        systems = fine = frozenset()
    prop = str(attributes.get("property") or "").casefold()
    if not prop:
        bracket = re.search(r"\[([^\]]+)\]", lowered)
        prop = _BRACKET_PROPERTIES.get(bracket.group(1), "") if bracket else ""
        prop = prop or _NAMED_PROPERTIES.get(head.split(" of ")[0], "")  # "pH of Urine", "Color of Pleural fluid"
        if not prop and re.search(r"/100 \w+", lowered):
            prop = "nfr"  # "Neutrophils/100 leukocytes in Blood"
        elif not prop and "/" in lowered.split(" in ")[0]:
            prop = "fr"  # "Alkaline phosphatase.liver/Alkaline phosphatase.total in Serum": a part of a whole
        elif not prop and re.search(r" in [^/\[]*/[^/\[]* in ", lowered):
            prop = "ratio"  # "Albumin in CSF/Albumin in Serum or Plasma": one analyte in two specimens
    time = str(attributes.get("time") or "").casefold()
    timed = "24" in time or "24 hour" in lowered
    scale = str(attributes.get("scale") or "").casefold()
    if not scale:
        scale = (
            "ord" if prop == "prthr" else "nom" if "identified" in lowered or prop in ("prid", "type", "aper") else ""
        )
        scale = scale or ("qn" if prop else "")
    method = _concept_method(str(attributes.get("method") or "").casefold(), lowered)
    properties = frozenset({prop}) if prop else frozenset()
    component = str(attributes.get("component") or re.split(r" \[| in | of | by ", lowered)[0])
    form = _form(re.split(r"[^a-z0-9]+", component.casefold()))
    return Axes(systems, fine, frozenset(), properties, "24h" if timed else "pt", scale, method or "", form)


def _form(words: list[str]) -> str:
    """The one form these words state, else "" (none, or free and total together)."""
    forms = {_FORMS[w] for w in words if w in _FORMS}
    return forms.pop() if len(forms) == 1 else ""


def _concept_method(method_part: str, lowered_display: str) -> str:
    """The METHOD_TYP part's method group; a part not listed is read by its words ("Probe.amp.sig",
    "IA.rapid", "Aerobic culture"), and a table without parts by its long name's "by ..." clause."""
    if method_part in _METHOD_TYPES:
        return _METHOD_TYPES[method_part] or ""
    by = lowered_display.rsplit(" by ", 1)[1] if " by " in lowered_display else ""
    words = _words(method_part.replace(".", " ")) if method_part else _words(by)
    if "amp" in words and method_part:
        return "naa"  # "Non-probe.amp.tar": amplified; in a name "Amp" is as often amphetamine
    return next((_METHOD_WORDS[w] for w in words if w in _METHOD_WORDS), "")


def _other_draw(source: frozenset[str], candidate: frozenset[str]) -> bool:
    """Both name one very specimen of the same group, and not the same one: arterial against venous
    blood, a nasopharyngeal against a throat swab. A group's generic value ("Blood") contradicts neither."""
    if len(source) != 1 or len(candidate) != 1 or source == candidate:
        return False
    (mine,), (theirs,) = source, candidate
    return mine in _FINE_GROUP and _FINE_GROUP.get(theirs) == _FINE_GROUP[mine]


def axis_features(source: Axes, candidates: list[Axes]) -> np.ndarray:
    """(candidates x AXIS_FEATURES): axes agreeing, axes contradicting, system and property conflict.

    An axis counts only when both sides state it; a candidate without axes scores 0 everywhere.
    Timing is stated by words ("24h", "TV") or by the unit (mg/24h: timed; mg/dL: a single specimen).
    """
    out = np.zeros((len(candidates), AXIS_FEATURES), dtype=np.float32)
    if not source.stated() and not candidates:
        return out
    for row, axes in enumerate(candidates):
        if not axes.stated():
            continue
        agree = conflict = 0
        system_conflict = property_conflict = 0.0
        if source.system and axes.system:
            if axes.system <= source.unlikely:  # possible, but not what a mapper would pick
                conflict += 1
            elif _other_draw(source.specimen, axes.specimen):
                conflict, system_conflict = conflict + 1, 1.0
            elif source.system & axes.system:
                agree += 1 + (source.specimen == axes.specimen)  # the very specimen counts twice
            else:
                conflict, system_conflict = conflict + 1, 1.0
        if source.property and axes.property:
            if source.property & axes.property:
                agree += 1
            else:
                conflict, property_conflict = conflict + 1, 1.0
        if source.time and axes.time:
            agree, conflict = (agree + 1, conflict) if axes.time == source.time else (agree, conflict + 1)
        if source.scale and axes.scale:
            agree, conflict = (agree + 1, conflict) if axes.scale == source.scale else (agree, conflict + 1)
        if source.method and axes.method:
            agree, conflict = (agree + 1, conflict) if axes.method == source.method else (agree, conflict + 1)
        if source.form and (source.form != "total" or axes.form):  # "total" says nothing against no form
            agree, conflict = (agree + 1, conflict) if axes.form == source.form else (agree, conflict + 1)
        out[row] = (agree, conflict, system_conflict, property_conflict)
    return out
