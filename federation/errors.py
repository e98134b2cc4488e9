"""Why a trust chain (or a federation request) is refused: one reason code per failure, so a
log line, a test and an error response all name the same cause."""

from __future__ import annotations

# Reason codes, one per way a chain can fail. Tests assert on these, callers map them to
# protocol errors (OpenID Federation 1.0 section 8.9: invalid_trust_chain, invalid_metadata, …).
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
BAD_SIGNATURE = "invalid_signature"
UNKNOWN_ANCHOR = "unknown_trust_anchor"
POLICY_VIOLATION = "metadata_policy_violation"
NOT_FOUND = "not_found"  # a superior no longer vouches for the entity (removed or revoked)
LOOP = "loop"
PATH_TOO_LONG = "max_path_length"
NAMING = "naming_constraints"
MALFORMED = "invalid_statement"
UNREACHABLE = "unreachable"
ENTITY_TYPE = "entity_type_not_allowed"
TRUST_MARK = "invalid_trust_mark"


class FederationError(Exception):
    """A federation check failed; `reason` is one of the codes above, `detail` says where."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def protocol_error(self) -> str:
        """The OpenID Federation error code for a response about this failure."""
        if self.reason == POLICY_VIOLATION:
            return "invalid_metadata"
        if self.reason == UNKNOWN_ANCHOR:
            return "invalid_trust_anchor"
        return "invalid_trust_chain"
