"""Readers of the core systems' export files. Each reader streams its file row by row and
yields either a `Record` (a parsed row, still holding the resident number, which never leaves
the connector) or a `Problem` (where a row is bad and why, never its content)."""

from connectors.sources.base import Problem, Record, RowError, detect_encoding

__all__ = ["Problem", "Record", "RowError", "detect_encoding"]
