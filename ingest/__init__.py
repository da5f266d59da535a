"""Reading what hospitals and teams actually send: HL7 v2 messages, FHIR resources and source schemas.

A library: it turns messages and files into plain rows and records with their provenance, and imports
nothing of crosswalk's but itself. `service/` stores what it reads; `monitors/` scores the rows.

- `hl7v2`: ER7 files, batches and MLLP payloads -> `Hl7Message`s (checked, or with the reason they
  cannot be read) -> rows per OBX (results), ADT message, OBR (orders), RXA (immunisations), DG1.
- `fhir`: Bundles, NDJSON and single resources -> the same row shape.
- `local_codes`: rows -> the local codes of a field with frequency, context and evidence messages.
- `conformance`: structural findings per message, counted per sending facility.
- `mllp`: an asyncio MLLP listener that acknowledges only what an injected store has kept.
- `coding`: which coding systems are standard, whatever a sender calls them.
"""
