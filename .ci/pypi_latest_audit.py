"""A partial dependency audit from the data this machine can reach: PyPI's project JSON
(`/pypi/<name>/json`), whose `vulnerabilities` list covers the project's newest release only.

pip-audit needs the per-release JSON (`/pypi/<name>/<version>/json`) or OSV, and neither
answers here. So: a package installed at its newest release is audited (its listed advisories
apply to exactly what we run); a package held at an older release is NOT AUDITED, and is named
as such, with what holds it back (an installed package's requirement that excludes the newest
release, e.g. `pyOpenSSL 26.4.0 requires cryptography<51,>=49.0.0`): then it is not a pin of
ours to raise. Exit 1 when an audited package has a known vulnerability, else 0.

Usage: python .ci/pypi_latest_audit.py REQUIREMENTS (pip freeze output: name==version lines)
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import distributions
from pathlib import Path

# packaging: a dependency of pytest, so in every .venv that .ci/run makes (the dev extra)
from packaging.requirements import InvalidRequirement, Requirement

PROJECT_URL = "https://pypi.org/pypi/{name}/json"
TIMEOUT_S = 20


def _project(name: str) -> dict | None:
    try:
        # S310: a fixed https URL of PyPI's JSON API
        with urllib.request.urlopen(PROJECT_URL.format(name=name), timeout=TIMEOUT_S) as resp:  # noqa: S310 - see above
            return json.load(resp)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def held_back_by(name: str, newest: str, requirements: Iterable[tuple[str, str]]) -> list[str]:
    """The requirements (of the installed packages: (package, requirement) pairs) that exclude
    `name`'s newest release: why an older one is installed."""
    found = []
    for owner, spec in requirements:
        try:
            req = Requirement(spec)
        except InvalidRequirement:
            continue
        if _canonical(req.name) != name or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        if not req.specifier.contains(newest, prereleases=True):
            found.append(f"{owner} requires {req.name}{req.specifier}")
    return found


def installed_requirements() -> list[tuple[str, str]]:
    return [
        (f"{d.metadata['Name']} {d.version}", r) for d in distributions() for r in d.requires or []
    ]


def main(requirements: Path) -> int:
    pins = []
    for line in requirements.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            pins.append((_canonical(name), version.strip()))
    with ThreadPoolExecutor(8) as pool:
        projects = list(pool.map(lambda pin: _project(pin[0]), pins))
    audited, older, unreachable, found = [], [], [], []
    for (name, version), project in zip(pins, projects, strict=True):
        if project is None:
            unreachable.append(name)
            continue
        newest = project["info"]["version"]
        if version != newest:
            why = "; ".join(held_back_by(name, newest, installed_requirements()))
            older.append(
                f"{name} {version} (newest {newest}{'; held back: ' + why if why else ''})"
            )
            continue
        audited.append(name)
        for vuln in project.get("vulnerabilities") or []:
            if vuln.get("withdrawn"):
                continue
            fixed = ", ".join(vuln.get("fixed_in") or []) or "no fix"
            found.append(f"{name} {version}: {vuln.get('id')} (fixed in {fixed})")
    total = len(pins)
    print(
        f"ci: PyPI project data: {len(audited)} of {total} packages audited (installed at their "
        f"newest release), {len(found)} known vulnerabilities"
    )
    for line in found:
        print("    VULNERABLE " + line)
    if older:
        print(
            f"ci: NOT AUDITED ({len(older)}, older than their newest release): " + "; ".join(older)
        )
    if unreachable:
        print(f"ci: NOT AUDITED ({len(unreachable)}, PyPI unreachable): " + ", ".join(unreachable))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
