"""A monitored feed's data re-opens an approved mapping it no longer agrees with, and a clean batch does not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.terminology import Concept, Terminology
from service.store.tables import Role
from tests.service.test_feeds import Feeds

LOINC = Terminology(
    "loinc",
    "loinc",
    "2.77",
    [
        Concept(
            "2345-7", "Glucose [Mass/volume] in Serum or Plasma", attributes={"property": "MCnc", "units": "mg/dL"}
        ),
        Concept(
            "2951-2", "Sodium [Moles/volume] in Serum or Plasma", attributes={"property": "SCnc", "units": "mmol/L"}
        ),
        Concept(
            "2823-3", "Potassium [Moles/volume] in Serum or Plasma", attributes={"property": "SCnc", "units": "mmol/L"}
        ),
    ],
)
ANALYTES = {"GLU": (100.0, 15.0, "mg/dL"), "NA": (140.0, 3.0, "mmol/L"), "K": (4.2, 0.4, "mmol/L")}


def lab_extract(rows: int, seed: int, glucose_in_mmol: bool = False) -> bytes:
    """An LIS extract: item code, result as text, unit, site (not OMOP-named)."""
    rng = np.random.default_rng(seed)
    codes = rng.choice(list(ANALYTES), rows)
    values = np.array([rng.normal(*ANALYTES[c][:2]) for c in codes])
    units = np.array([ANALYTES[c][2] for c in codes], dtype=object)
    if glucose_in_mmol:  # the LIS switched glucose to mmol/L under the same item code
        glucose = codes == "GLU"
        values[glucose], units[glucose] = values[glucose] / 18.0, "mmol/L"
    frame = pd.DataFrame({"item": codes, "result": [f"{v:.1f}" for v in values], "uom": units})
    frame["site"] = rng.choice(["north", "south"], rows)
    return frame.to_csv(index=False).encode()


def test_a_unit_switch_reopens_the_approved_mapping_with_its_evidence(sqlite_service):
    service = sqlite_service
    LOINC.save(service.settings.home / "terminologies" / "loinc.jsonl.gz")
    project = service.project()
    service.import_csv(project, b"source_code,source_text\nGLU,Glucose serum\nNA,Sodium serum\nK,Potassium serum\n")
    service.suggest(project)
    for code, target in (("GLU", "2345-7"), ("NA", "2951-2"), ("K", "2823-3")):
        assert service.decide(project, code, action="remap", target_code=target).status_code == 200
    feeds = Feeds(service)
    feed = feeds.create(lab_extract(1500, 1), name="lis", mapping_project_id=project)

    clean = feeds.post(feed["id"], lab_extract(900, 2))
    assert not [a for a in clean["alerts"] if a["check"] == "mapping_drift"]
    assert service.item(project, "GLU")["status"] == "approved"  # a clean batch re-opens nothing

    drifted = feeds.post(feed["id"], lab_extract(900, 3, glucose_in_mmol=True))
    alerts = [a for a in drifted["alerts"] if a["check"] == "mapping_drift"]
    assert [a["column"] for a in alerts] == ["GLU"] and alerts[0]["severity"] == "critical"
    glu = service.item(project, "GLU")
    assert (glu["status"], glu["target_code"]) == ("flagged", "2345-7")
    assert "mapping drift in feed 'lis' batch 2" in glu["comment"] and "mmol/L" in glu["comment"]
    assert service.item(project, "NA")["status"] == "approved"  # the analytes that did not move stay
    reopened = service.call("GET", f"/projects/{project}/reopenings", Role.viewer).json()
    assert [(r["source_code"], r["cause"]) for r in reopened] == [("GLU", "data")]
    history = service.call("GET", f"/projects/{project}/items/GLU/history", Role.viewer).json()
    assert history[-1]["action"] == "item.reopen" and history[-1]["model_version"] == "feed:lis#2"
