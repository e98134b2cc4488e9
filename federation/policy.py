"""Metadata policy (OpenID Federation 1.0 section 6.1): superiors restrict what their
subordinates may claim. Policies along a chain are combined top-down (the trust anchor's
first), the result is applied to the leaf's metadata, and any conflict refuses the chain.

Operators: value, add, default, one_of, subset_of, superset_of, essential, applied in that
order. Unknown operators are ignored unless the statement lists them in
`metadata_policy_crit`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from federation.errors import POLICY_VIOLATION, FederationError

OPERATORS = ("value", "add", "default", "one_of", "subset_of", "superset_of", "essential")
_LIST_OPERATORS = ("add", "one_of", "subset_of", "superset_of")
_ABSENT = object()

# {entity_type: {parameter: {operator: argument}}}
Policy = dict[str, dict[str, dict[str, Any]]]


def _fail(where: str, why: str) -> FederationError:
    return FederationError(POLICY_VIOLATION, f"{where}: {why}")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _union(a: list[Any], b: list[Any]) -> list[Any]:
    return a + [x for x in b if x not in a]


def _intersection(a: list[Any], b: list[Any]) -> list[Any]:
    return [x for x in a if x in b]


def check_operators(param_policy: dict[str, Any], where: str, crit: Sequence[str] = ()) -> None:
    """One parameter's operators: well-formed arguments and no contradictions between them
    (section 6.1.3.1's table of allowed combinations)."""
    for op, arg in param_policy.items():
        if op not in OPERATORS:
            if op in crit:
                raise _fail(where, f"critical operator {op!r} is not understood")
            continue
        if op in _LIST_OPERATORS and not isinstance(arg, list):
            raise _fail(where, f"{op} takes a list")
        if op == "essential" and not isinstance(arg, bool):
            raise _fail(where, "essential takes true or false")
        if op == "default" and arg is None:
            raise _fail(where, "default cannot be null")
    p = param_policy
    if "one_of" in p and ("subset_of" in p or "superset_of" in p):
        raise _fail(where, "one_of cannot be combined with subset_of or superset_of")
    if "value" in p:
        value = p["value"]
        if value is None and p.get("essential") is True:
            raise _fail(where, "value null (remove) contradicts essential")
        if value is not None:
            if "one_of" in p and value not in p["one_of"]:
                raise _fail(where, f"value {value!r} is not one of {p['one_of']!r}")
            if "subset_of" in p and not set(map(repr, _as_list(value))) <= set(
                map(repr, p["subset_of"])
            ):
                raise _fail(where, "value is not a subset of subset_of")
            if "superset_of" in p and not set(map(repr, p["superset_of"])) <= set(
                map(repr, _as_list(value))
            ):
                raise _fail(where, "value is not a superset of superset_of")
            if "add" in p and not set(map(repr, p["add"])) <= set(map(repr, _as_list(value))):
                raise _fail(where, "add has values that value does not")
    if "add" in p and "subset_of" in p and not all(x in p["subset_of"] for x in p["add"]):
        raise _fail(where, "add has values outside subset_of")
    if "default" in p and "one_of" in p and p["default"] not in p["one_of"]:
        raise _fail(where, "default is not one of one_of")
    if (
        "subset_of" in p
        and "superset_of" in p
        and not all(x in p["subset_of"] for x in p["superset_of"])
    ):
        raise _fail(where, "superset_of is not within subset_of")


def combine(superior: Policy, subordinate: Policy, *, crit: Sequence[str] = ()) -> Policy:
    """Merge a subordinate's policy into its superior's (section 6.1.4.1): a subordinate can
    only narrow what its superior allows, never widen or contradict it."""
    out: Policy = copy.deepcopy(superior)
    for etype, params in subordinate.items():
        merged_params = out.setdefault(etype, {})
        for param, ops in params.items():
            where = f"{etype}.{param}"
            if not isinstance(ops, dict):
                raise _fail(where, "a parameter's policy must be an object of operators")
            mine = merged_params.setdefault(param, {})
            for op, arg in ops.items():
                if op not in mine:
                    mine[op] = copy.deepcopy(arg)
                elif op in ("value", "default"):
                    if mine[op] != arg:
                        raise _fail(where, f"{op} {arg!r} conflicts with a superior's {mine[op]!r}")
                elif op in ("add", "superset_of"):
                    mine[op] = _union(mine[op], arg)
                elif op == "one_of":
                    both = _intersection(mine[op], arg)
                    if not both:
                        raise _fail(where, "one_of has nothing in common with a superior's")
                    mine[op] = both
                elif op == "subset_of":
                    mine[op] = _intersection(mine[op], arg)
                elif op == "essential":
                    mine[op] = bool(mine[op]) or bool(arg)
                else:
                    mine[op] = arg  # unknown, non-critical: kept, ignored when applied
            check_operators(mine, where, crit)
    return out


def apply(
    policy: dict[str, dict[str, Any]], metadata: dict[str, Any], etype: str
) -> dict[str, Any]:
    """The metadata of one entity type after the combined policy (section 6.1.4.2); raises a
    metadata_policy_violation naming the parameter when the metadata does not comply."""
    out = copy.deepcopy(metadata)
    for param, ops in policy.items():
        where = f"{etype}.{param}"
        value: Any = out.get(param, _ABSENT)
        if "value" in ops:
            value = _ABSENT if ops["value"] is None else copy.deepcopy(ops["value"])
        if "add" in ops:
            value = _union(_as_list(value) if value is not _ABSENT else [], ops["add"])
        if "default" in ops and value is _ABSENT:
            value = copy.deepcopy(ops["default"])
        if value is not _ABSENT:
            if "one_of" in ops and value not in ops["one_of"]:
                raise _fail(where, f"{value!r} is not one of {ops['one_of']!r}")
            if "subset_of" in ops:
                value = _intersection(_as_list(value), ops["subset_of"])
            if "superset_of" in ops and not all(x in _as_list(value) for x in ops["superset_of"]):
                raise _fail(where, f"must include {ops['superset_of']!r}")
        if ops.get("essential") is True and (value is _ABSENT or value == []):
            raise _fail(where, "is essential but missing")
        if value is _ABSENT:
            out.pop(param, None)
        else:
            out[param] = value
    return out


def resolve(
    policies: list[tuple[Policy, list[str]]], metadata: dict[str, Any], etype: str
) -> dict[str, Any]:
    """Combine `policies` (trust anchor first, each with its statement's
    metadata_policy_crit) and apply the result to one entity type's metadata."""
    combined: Policy = {}
    for policy, crit in policies:
        for etype_name, params in policy.items():
            for param, ops in params.items():
                if isinstance(ops, dict):
                    check_operators(ops, f"{etype_name}.{param}", crit)
        combined = combine(combined, policy, crit=crit)
    return apply(combined.get(etype, {}), metadata, etype)
