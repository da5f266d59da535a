"""score_batch's JSON contract, the Evidently drill-down, the Dask path, and the real MiniLM encoder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from monitors.contract import infer_contract
from monitors.profile import profile_frame
from monitors.report import evidently_html, score_batch
from monitors.rules import PlausibilityRules

GLUCOSE = "2339-0"


def _unit_switch(frame: pd.DataFrame, site: str, code: str = "29463-7") -> pd.DataFrame:
    rows = (frame.measurement_source_value == code) & (frame.site == site)
    frame.loc[rows, "value_as_number"] *= 2.2046
    frame.loc[rows, "unit_source_value"] = "[lb_av]"
    return frame


def test_report_to_dict_is_json_with_the_alert_fields(reference, current, contract):
    report = score_batch(reference, _unit_switch(current, "south"), contract, batch_id="2024-05-01")
    data = json.loads(json.dumps(report.to_dict()))
    [alert] = data["alerts"]
    assert {"check", "column", "segment", "severity", "statistic", "threshold", "message"} <= set(alert)
    assert alert["segment"] == "south" and alert["severity"] == "critical"
    assert data["summary"] == {"critical": 1, "warning": 0, "info": 0}
    assert data["rows"] == {"reference": 800, "current": 800} and data["segments"] == ["north", "south"]


def test_reference_profile_and_frame_score_alike(reference, current, contract):
    changed = _unit_switch(current, "south")
    ref_profile = profile_frame(reference, contract, rules=PlausibilityRules())
    a = score_batch(reference, changed, contract)
    b = score_batch(ref_profile, changed, contract)
    assert [x.message for x in a.alerts] == [x.message for x in b.alerts]


def test_contract_is_inferred_when_not_given(reference, current):
    assert score_batch(reference, current).alerts == []


def test_evidently_html(tmp_path, reference, current, contract):
    path = evidently_html(reference, current, tmp_path / "drift.html", contract)
    assert path.stat().st_size > 10_000 and "value_as_number" in path.read_text(errors="ignore")


@pytest.mark.slow
def test_dask_path_gives_the_in_memory_alerts(tmp_path, reference, current, contract):
    from dask.distributed import Client, LocalCluster

    from monitors.scale import score_batch_dask

    changed = _unit_switch(current, "south")
    changed.loc[changed.index[changed.site == "north"][:150], "value_as_number"] = np.nan
    for i, part in enumerate(np.array_split(np.arange(len(changed)), 4)):
        changed.iloc[part].to_csv(tmp_path / f"part-{i}.csv", index=False)
    expected = score_batch(reference, changed, contract)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster),
    ):
        got = score_batch_dask(str(tmp_path / "part-*.csv"), reference, contract, blocksize=4_000)
    assert len(expected.alerts) == 2
    assert [(a.check, a.column, a.segment, a.severity) for a in got.alerts] == [
        (a.check, a.column, a.segment, a.severity) for a in expected.alerts
    ]
    assert [a.statistic for a in got.alerts] == pytest.approx([a.statistic for a in expected.alerts])
    assert got.rows_current == expected.rows_current == 800


@pytest.mark.slow
def test_text_drift_with_the_real_minilm_model():
    from monitors.checks.codes import minilm_encoder

    cardio = [
        "chest pain on exertion",
        "palpitations and shortness of breath",
        "elevated troponin, angina",
        "atrial fibrillation with rapid ventricular response",
        "heart murmur on auscultation",
    ]
    skin = [
        "itchy rash on both forearms",
        "eczema flare after new soap",
        "psoriasis plaques on elbows",
        "blistering lesion on the ankle",
        "acne on the face and back",
    ]
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"reason_text": [f"{t}, seen today in clinic" for t in rng.choice(cardio, 200)]})
    contract = infer_contract(ref)
    assert contract.column("reason_text").kind == "text"
    encoder = minilm_encoder()
    same = pd.DataFrame({"reason_text": [f"{t}, seen today in clinic" for t in rng.choice(cardio, 200)]})
    other = pd.DataFrame({"reason_text": [f"{t}, seen today in clinic" for t in rng.choice(skin, 200)]})
    assert score_batch(ref, same, contract, encoder=encoder).alerts == []
    [alert] = score_batch(ref, other, contract, encoder=encoder).alerts
    assert alert.check == "text_drift" and alert.column == "reason_text"
