"""The portal's "+ services" (records, growth chart, vaccination schedule, access history,
export): their blueprints, registered together by consent.app."""

from __future__ import annotations

from flask import Blueprint

from portal.export import bp as export_bp
from portal.export_child import bp as export_child_bp
from portal.growth import bp as growth_bp
from portal.history import bp as history_bp
from portal.records import bp as records_bp
from portal.vaccinations import bp as vaccinations_bp

BLUEPRINTS: list[Blueprint] = [
    records_bp,
    growth_bp,
    vaccinations_bp,
    history_bp,
    export_bp,
    export_child_bp,
]
