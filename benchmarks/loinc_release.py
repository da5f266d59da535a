"""The benchmark's public LOINC tables rewritten the way a LOINC release writes `Loinc.csv`.

The two public sources carry long and short names, and parts only for LIVD's codes. A release's table
also carries every term's six parts and RELATEDNAMES2, which LOINC builds from the synonyms of every
part: "Whole blood" on every blood term, "PCR" on every amplified one. Users load such a table, so the
mapping benchmark also ranks against this rewrite. Parts missing from a source are read from the long
name; the related names are this module's rendering of LOINC's part synonyms (system, property, time,
scale and method words). No analyte synonyms are invented, so the rewrite measures what the axis words
cost, not what a release's analyte names ("Glu", "TSH") would add.

    python benchmarks/loinc_release.py OUT_DIR   # writes OUT_DIR/{source}_loinc.csv and _pairs.csv
"""

from __future__ import annotations

import csv
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.datasets import LAB_SOURCES, labs_root  # noqa: E402

PARTS = ("COMPONENT", "PROPERTY", "TIME_ASPCT", "SYSTEM", "SCALE_TYP", "METHOD_TYP")

# The long name's system -> (SYSTEM part, its related names).
SYSTEMS = {
    "serum or plasma": ("Ser/Plas", "Pl; Plasma; Plsm; SerP; SerPl; SerPlas; Serum; Serum or plasma; SR"),
    "serum": ("Ser", "Serum; SR"),
    "plasma": ("Plas", "Pl; Plasma; Plsm"),
    "platelet poor plasma": ("PPP", "Platelet poor plasma; PPP"),
    "blood": ("Bld", "WB; Whole blood"),
    "arterial blood": ("BldA", "Arterial; Arterial blood; ART; Bld-a; Blood arterial"),
    "venous blood": ("BldV", "Bld-v; Blood venous; VEN; Venous; Venous blood"),
    "capillary blood": ("BldC", "Cap; Capillary; Capillary blood"),
    "mixed venous blood": ("BldMV", "Blood mixed venous; Mixed venous blood"),
    "urine": ("Urine", "UR; Urn; Urine"),
    "urine sediment": ("Urine sed", "UR sed; Urine sediment; Urn sed"),
    "cerebral spinal fluid": ("CSF", "Cerebral spinal fluid; IHC; Spinal fluid"),
    "stool": ("Stool", "Fecal; Feces; Stl; Stool"),
    "pleural fluid": ("Plr fld", "Pleural fluid; Thoracentesis fluid"),
    "body fluid": ("Body fld", "Body fluid; Fld; Fluid"),
    "peritoneal fluid": ("Periton fld", "Abdominal fluid; Ascites; Ascitic fluid; Peritoneal fluid"),
    "peritoneal dialysis fluid": ("Dial fld prt", "Dialysis fluid; Peritoneal dialysis fluid"),
    "synovial fluid": ("Synv fld", "Joint fluid; Synovial fluid"),
    "amniotic fluid": ("Amnio fld", "Amniotic fluid"),
    "pericardial fluid": ("Pericard fld", "Pericardial fluid"),
    "nasopharynx": ("Nph", "Nasopharyngeal; Nasopharynx; NP"),
    "respiratory specimen": ("Respiratory", "Resp; Respiratory"),
    "saliva": ("Saliva", "Oral fluid; Saliva"),
    "throat": ("Thrt", "Throat"),
    "nose": ("Nose", "Nasal; Nose"),
    "bronchial specimen": ("Bronchial", "Bronchial"),
    "sputum": ("Sputum", "Sputum"),
    "unspecified specimen": ("XXX", "Misc; To be specified in another part of the message; Unspecified"),
    "isolate": ("Isolate", "Isolate"),
    "red blood cells": ("RBC", "Erythrocytes; RBC; Red blood cells"),
    "bone marrow": ("Bone mar", "Bone marrow; Marrow"),
    "semen": ("Semen", "Semen; Spermatozoa"),
    "sweat": ("Sweat", "Sweat"),
    "tissue": ("Tiss", "Tissue"),
    "gastric fluid": ("Gast fld", "Gastric fluid"),
}
# The long name's bracket (or its opening words) -> (PROPERTY part, its related names).
PROPERTIES = {
    "mass/volume": ("MCnc", "Level; Mass concentration"),
    "moles/volume": ("SCnc", "Level; Moles/volume; Substance concentration"),
    "#/volume": ("NCnc", "Count; Number concentration (count/vol)"),
    "enzymatic activity/volume": ("CCnc", "Catalytic concentration; Enzymatic activity/volume; Enzyme activity"),
    "units/volume": ("ACnc", "Arbitrary concentration; Level"),
    "mass/time": ("MRat", "Mass rate"),
    "moles/time": ("SRat", "Substance rate"),
    "titer": ("Titr", "Titer; Titre"),
    "presence": ("PrThr", "Pos/Neg; Positive/Negative; Presence; Screen; Threshold"),
    "ratio": ("Ratio", "Ratio"),
    "mass ratio": ("MRto", "Mass ratio; Ratio"),
    "molar ratio": ("SRto", "Ratio; Substance ratio"),
    "volume fraction": ("VFr", "Percent; Volume fraction"),
    "mass fraction": ("MFr", "Mass fraction; Percent"),
    "time": ("Time", "Time"),
    "partial pressure": ("PPres", "Partial pressure; Pressure"),
    "susceptibility": ("Susc", "Antibiotic; Antimicrobial; Sensitivity; Susc; Susceptibility"),
    "identifier": ("Prid", "Identifier; Identity or presence; Presence or identity"),
    "entitic volume": ("EntVol", "Entitic volume"),
    "entitic mass": ("EntMass", "Entitic mass"),
    "osmolality": ("Osmol", "Osmolality"),
    "#/area": ("Naric", "Number areic density"),
    "ph": ("LsCnc", "Acidity; Alkalinity; Log substance concentration"),
    "specific gravity": ("Rden", "Relative density; SG"),
    "color": ("Type", "Type"),
    "appearance": ("Aper", "Appearance"),
}
# The long name's "by ..." clause -> (METHOD_TYP part, its related names).
METHODS = {
    "naa with probe detection": (
        "Probe.amp.tar",
        "Amp; Amplification; DNA probe; NAA; NAAT; Nucleic acid amplification; PCR; Probe with target amplification",
    ),
    "immunoassay": ("IA", "EIA; ELISA; Immune assay; Immunoassay"),
    "automated count": ("Automated count", "Auto; Automated count"),
    "manual count": ("Manual count", "Manual; Manual count"),
    "test strip": ("Test strip", "Dipstick; Test strip"),
    "calculation": ("Calculated", "Calc; Calculated"),
    "immunofluorescence": ("IF", "IF; Immune fluorescence; Immunofluorescence"),
    "minimum inhibitory concentration (mic)": ("MIC", "MIC; Minimum inhibitory concentration"),
}
SYNONYMS_OF = {part: names for part, names in [*SYSTEMS.values(), *PROPERTIES.values(), *METHODS.values()]}
SCALES = {"Qn": "QNT; Quan; Quant; Quantitative", "Ord": "Ordinal; QL; Qual; Qualitative; Screen", "Nom": "Nominal"}
TIMES = {"Pt": "Point in time; Random", "24H": "24 hours; 24HR; 24hr; 24hrs; Twenty four hours; U24"}


def parts_of(long_name: str) -> dict[str, str]:
    """A long common name's six parts, as far as the name says them."""
    lowered = long_name.casefold()
    head = lowered.split(" by ")[0].split(" --")[0]
    method = lowered.rsplit(" by ", 1)[1] if " by " in lowered else ""
    bracket = re.search(r"\[([^\]]+)\]", lowered)
    prop = PROPERTIES.get(bracket.group(1), ("", ""))[0] if bracket else ""
    prop = prop or next((p for words, (p, _) in PROPERTIES.items() if head.startswith(f"{words} of ")), "")
    system = head.rsplit(" in ", 1)[1] if " in " in head else head.rsplit(" of ", 1)[1] if " of " in head else ""
    time = "Pt"
    if system.startswith("24 hour "):
        time, system = "24H", system.removeprefix("24 hour ")
    return {
        "COMPONENT": re.split(r" \[| in | of | by ", long_name)[0].strip(),
        "PROPERTY": prop,
        "TIME_ASPCT": time,
        "SYSTEM": SYSTEMS.get(system, (system.capitalize() or "XXX", ""))[0],
        "SCALE_TYP": "Ord" if prop == "PrThr" else "Nom" if prop in ("Prid", "Type", "Aper") else "Qn",
        "METHOD_TYP": METHODS.get(method, (method.capitalize(), ""))[0],
    }


def related_names(parts: dict[str, str]) -> str:
    """RELATEDNAMES2 as LOINC builds it from the parts: every part's synonyms, sorted, "; "-joined."""
    names = [
        *SYNONYMS_OF.get(parts["PROPERTY"], "").split("; "),
        *SYNONYMS_OF.get(parts["SYSTEM"], parts["SYSTEM"]).split("; "),
        *SYNONYMS_OF.get(parts["METHOD_TYP"], parts["METHOD_TYP"]).split("; "),
        *TIMES.get(parts["TIME_ASPCT"], "").split("; "),
        *SCALES.get(parts["SCALE_TYP"], "").split("; "),
    ]
    return "; ".join(sorted({name for name in names if name}, key=str.casefold))


def write_release_shaped(out: Path, labs: Path | None = None) -> Path:
    """Each source's LOINC table as a release writes it, beside a copy of its pairs; returns `out`."""
    source_dir = labs_root(labs)
    out.mkdir(parents=True, exist_ok=True)
    for source in LAB_SOURCES:
        with (source_dir / f"{source}_loinc.csv").open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        columns = ["LOINC_NUM", *PARTS, "CLASS", "STATUS", "LONG_COMMON_NAME", "SHORTNAME", "RELATEDNAMES2"]
        with (out / f"{source}_loinc.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns, extrasaction="ignore", quoting=csv.QUOTE_ALL)
            writer.writeheader()
            for row in rows:
                parts = {part: row.get(part, "") for part in PARTS}
                if not parts["COMPONENT"]:
                    parts = parts_of(row["LONG_COMMON_NAME"])
                writer.writerow({**row, **parts, "STATUS": "ACTIVE", "RELATEDNAMES2": related_names(parts)})
        shutil.copy(source_dir / f"{source}_pairs.csv", out / f"{source}_pairs.csv")
    return out


if __name__ == "__main__":
    print(write_release_shaped(Path(sys.argv[1])))
