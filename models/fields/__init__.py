"""Source-field mapping: rank the fields of a target data model (OMOP CDM, FHIR R4, custom) for each source column."""
