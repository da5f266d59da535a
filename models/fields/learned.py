"""A team's field model: evidence weights and calibration refitted on its approvals, and the approvals it remembers.

The bundled field suggester ranks with weights set on public development sets. A team's approved
field mappings say more about its own sources: how much its column names can be trusted, and what
it did before. `FieldHistory` turns earlier approvals into three more kinds of evidence per
(source column, target field):

- `history_same`: the best similarity of an approved source column whose target is this field
  (`patients.dob` approved as `person.birth_datetime` -> a new `members.dob` goes there too);
- `history_column`: the same for an approved source whose target has this field's column name in
  any table (`PERS_ID` -> `*.person_id`: the table evidence then picks the table);
- `history_table`: the share of the source table's approved columns that went to this field's
  table (a new column of `labevents` most likely belongs to `measurement`), smoothed by one.

A `FieldRanker` (fitted by training/fields.py) weighs the bundled evidence and these, and maps the
weighted sum to P(correct) with the suggester's own (sum, gap) calibration.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ingest.schema import SourceColumn

HISTORY_EVIDENCE = ("history_same", "history_column", "history_table")
MODEL_FILE = "field_model.json"  # in a registered version's folder: marks a field model


@dataclass(frozen=True)
class ApprovedField:
    """One approved source column and the target fields (`table.column`) it maps to."""

    source: SourceColumn
    targets: tuple[str, ...]


@dataclass(frozen=True)
class FieldHistory:
    approved: tuple[ApprovedField, ...]

    def __len__(self) -> int:
        return len(self.approved)

    def evidence(
        self,
        similarity: np.ndarray,
        source_tables: Sequence[str],
        field_keys: Sequence[str],
        field_tables: np.ndarray,
        tables: Sequence[str],
        leave_out: Sequence[int | None] | None = None,
    ) -> dict[str, np.ndarray]:
        """(columns x fields) history evidence.

        `similarity`: (columns x approved) similarity of each column to each approved source in [0, 1];
        `field_tables[j]`: index in `tables` of field j's table; `leave_out[i]`: an approved source
        that column i must not see (itself, when the history is scored on its own members).
        """
        n, m = similarity.shape
        sims = similarity.copy()
        if leave_out is not None:
            for i, j in enumerate(leave_out):
                if j is not None:
                    sims[i, j] = 0.0
        position = {key: j for j, key in enumerate(field_keys)}
        column_of = [key.partition(".")[2] for key in field_keys]
        fields_by_column: dict[str, list[int]] = {}
        for j, column in enumerate(column_of):
            fields_by_column.setdefault(column, []).append(j)
        table_position = {t: k for k, t in enumerate(tables)}
        same = np.zeros((n, len(field_keys)))
        by_column = np.zeros((n, len(field_keys)))
        for s, approved in enumerate(self.approved):
            targets = [position[t] for t in approved.targets if t in position]  # a field since dropped: skipped
            for j in targets:
                np.maximum(same[:, j], sims[:, s], out=same[:, j])
                for k in fields_by_column[column_of[j]]:
                    np.maximum(by_column[:, k], sims[:, s], out=by_column[:, k])
        table_share = self._table_share(source_tables, table_position, position, leave_out)
        return {"history_same": same, "history_column": by_column, "history_table": table_share[:, field_tables]}

    def _table_share(self, source_tables, table_position, position, leave_out) -> np.ndarray:
        """(columns x target tables): the share of the source table's approved columns sent to each."""
        counts: dict[str, np.ndarray] = {}
        for approved in self.approved:
            row = counts.setdefault(_table_key(approved.source.table), np.zeros(len(table_position)))
            for k in self._target_tables(approved, table_position, position):
                row[k] += 1.0 / max(len(approved.targets), 1)
        out = np.zeros((len(source_tables), len(table_position)))
        for i, table in enumerate(source_tables):
            row = counts.get(_table_key(table))
            if row is None:
                continue
            row = row.copy()
            if leave_out is not None and leave_out[i] is not None:
                own = self.approved[leave_out[i]]
                for k in self._target_tables(own, table_position, position):
                    row[k] -= 1.0 / max(len(own.targets), 1)
            out[i] = row / (row.sum() + 1.0)
        return out

    @staticmethod
    def _target_tables(approved: ApprovedField, table_position, position) -> list[int]:
        return [table_position[t.partition(".")[0]] for t in approved.targets if t in position]

    def to_dict(self) -> dict:
        return {"approved": [{"source": _column_dict(a.source), "targets": list(a.targets)} for a in self.approved]}

    @classmethod
    def from_dict(cls, data: dict) -> FieldHistory:
        return cls(tuple(ApprovedField(SourceColumn(**a["source"]), tuple(a["targets"])) for a in data["approved"]))


def _table_key(table: str) -> str:
    return table.casefold()


def _column_dict(column: SourceColumn) -> dict:
    data = asdict(column)
    data.pop("profile")  # what the values looked like then: the names and descriptions are remembered
    return data


@dataclass(frozen=True)
class FieldRanker:
    """Weights over the evidence (bundled and history), and the (sum, gap) calibration of their sum."""

    weights: dict[str, float]
    calibration: tuple[float, float, float]
    history: FieldHistory
    version: str

    def save(self, folder: Path) -> Path:
        path = Path(folder) / MODEL_FILE
        data = {
            "version": self.version,
            "weights": {k: round(float(v), 6) for k, v in self.weights.items()},
            "calibration": [round(float(c), 6) for c in self.calibration],
            "history": self.history.to_dict(),
        }
        path.write_text(json.dumps(data, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> FieldRanker | None:
        """The folder's field model, or None when it holds none (a code model's folder)."""
        path = Path(folder) / MODEL_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(
            {k: float(v) for k, v in data["weights"].items()},
            tuple(float(c) for c in data["calibration"]),
            FieldHistory.from_dict(data["history"]),
            data["version"],
        )
