"""Contract inference and its JSON round trip."""

from __future__ import annotations

import json

import pytest

from monitors.contract import Contract, ContractError, infer_contract


def test_infers_roles_from_names_and_values(contract):
    kinds = {c.name: c.kind for c in contract.columns}
    assert kinds["measurement_source_value"] == "code"
    assert kinds["value_as_number"] == "numeric"
    assert kinds["unit_source_value"] == "unit"
    assert kinds["measurement_date"] == "date" and contract.column("measurement_date").date_format == "%Y-%m-%d"
    assert kinds["person_id"] == "id" and kinds["measurement_concept_id"] == "categorical"
    assert contract.segment_columns == ["site"]
    assert contract.row_key_columns == ["measurement_id"]
    [pair] = contract.value_unit_pairs
    assert (pair.value, pair.unit, pair.code) == ("value_as_number", "unit_source_value", "measurement_source_value")


def test_json_round_trip_and_edit(tmp_path, contract):
    path = tmp_path / "contract.json"
    contract.save(path)
    data = json.loads(path.read_text())
    data["columns"][0]["kind"] = "categorical"  # an ops engineer's edit
    path.write_text(json.dumps(data))
    loaded = Contract.load(path)
    assert loaded.columns[0].kind == "categorical"
    assert loaded.value_unit_pairs == contract.value_unit_pairs and loaded.feed == "labs"
    assert Contract.from_dict(contract.to_dict()) == contract


def test_bad_contract_files(tmp_path, contract):
    data = contract.to_dict()
    data["columns"][0]["kind"] = "banana"
    with pytest.raises(ContractError, match="unknown kind"):
        Contract.from_dict(data)
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(ContractError, match="not JSON"):
        Contract.load(path)


def test_text_and_icd_codes(measurements):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "dx": ["250.00", "401.9", "E11.9", "I10", "486", "428.0"] * 5,
            "note": [f"patient reports intermittent chest pain episode number {i}" for i in range(30)],
            "sending_facility": ["A", "B"] * 15,
        }
    )
    contract = infer_contract(frame)
    assert [c.kind for c in contract.columns] == ["code", "text", "categorical"]
    assert contract.segment_columns == ["sending_facility"]
