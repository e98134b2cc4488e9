"""Source records → FHIR R4 resources (JP Core profiles where they exist). Each mapper returns
`Entry`s: a resource with the conditional identifier it is stored under, so the transport can
PUT `Type?identifier=system|value` and a re-run finds the same resource."""

from connectors.mapping.common import Context, Entry, MappingError

__all__ = ["Context", "Entry", "MappingError"]
