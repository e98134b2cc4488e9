"""Municipal connectors: export files in, consented people's FHIR resources out."""
