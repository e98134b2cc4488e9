"""The platform's icon, for the browser tab of every service's pages (the portal's and the
IdP's templates link it; `/favicon.ico`, which browsers ask for on their own, points to it)."""

from __future__ import annotations

from flask import Blueprint, Response, redirect
from flask.typing import ResponseReturnValue

bp = Blueprint("favicon", __name__)

# A white heart on the portal's blue, drawn small enough to read at 16 px.
ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="7" fill="#0b5cad"/>'
    '<path fill="#fff" d="M16 26.5 6.6 17.4a5.4 5.4 0 0 1 7.6-7.7L16 11.5l1.8-1.8a5.4 5.4 0 0 1 '
    '7.6 7.7z"/></svg>'
)


@bp.get("/favicon.svg")
def icon() -> Response:
    resp = Response(ICON_SVG, mimetype="image/svg+xml")
    resp.cache_control.public = True
    resp.cache_control.max_age = 86400
    return resp


@bp.get("/favicon.ico")
def legacy_icon() -> ResponseReturnValue:
    return redirect("/favicon.svg", code=301)
