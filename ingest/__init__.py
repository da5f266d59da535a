"""Reading what hospitals and teams actually send: HL7 v2 messages, FHIR resources and source schemas.

A library: it turns messages and files into plain rows and records with their provenance, and imports
nothing of crosswalk's but itself. `service/` stores what it reads; `monitors/` scores the rows.
"""
