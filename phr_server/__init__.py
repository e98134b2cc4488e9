"""The consent-gated FHIR R4 PHR server (the "secure DB")."""
