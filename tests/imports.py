"""What a Python file imports by absolute name, read with `ast` (module level and inside
functions), for the tests that check who imports what."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path


def absolute_imports(path: Path) -> Iterator[str]:
    """Each module named by an `import x.y` or `from x.y import z` in `path` (relative
    imports left out)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
