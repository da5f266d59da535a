"""Monitors: profiles, data-quality checks, drift and anomaly scoring of integrated data batches.

A library: plain data in, plain data (findings, alerts) out; never imports `service/`.

- `batches`: read a batch (CSV, Parquet, FHIR NDJSON) or raise `BatchError` with one clear line.
- `contract`: the feed's data contract, inferred from the reference's content (roles, value/unit/code triples,
  each with the reason), editable JSON; explicit roles win over inference.
- `lab`: lab result strings read as numbers ("<0.5", "1,234", "2-4"), unit spellings, their LOINC properties
  and known conversion factors.
- `profile`: mergeable per-segment column profiles (a window is a merge of batch profiles).
- `checks`: completeness, conformance, drift, units, codes, plausibility, batch anomaly -> `Finding`s.
- `report`: `score_batch(reference, current, contract) -> MonitorReport`; Evidently HTML drill-down.
- `alerts`: one alert per (feed, segment, check, column), dedup and lifecycle, `AlertStore`s.
- `webhooks`: signed delivery with retries from a persistent outbox.
- `mapping_drift`: evidence that an approved local-code mapping went stale (a unit contradicting the target's
  property, values jumping while the other codes hold still).
- `scale`: `score_batch_dask` for batches larger than memory.
"""
