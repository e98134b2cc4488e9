"""Access history: the AuditEvents of every PHR server holding the person's or their children's
records, shown as "who (app name) saw what, when", newest first, a page at a time.

Each server pages with its own keyset cursor; the page's cursor carries one per server (base64
JSON), so a family whose records sit in two cities sees both servers' events merged by time.
A page shows up to PAGE events of each server; a server with nothing older drops out of the
"older" cursor.

The portal's own reads (the person opening their pages) are folded, a run at a time, so the
apps' reads stand out; the filters (app, child, period) narrow the events of the page shown,
and the page links keep them (the PHR server's AuditEvent search takes no such parameters)."""

from __future__ import annotations

import base64
import functools
import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from consent.i18n import current_language
from consent.models import ConsentRecord, ConsentVersion, Municipality
from consent.records import RECIPIENT
from phr_core.scope_words import RESOURCE_NAMES
from phr_core.webapp import database
from portal import phr
from portal.federated import reader
from portal.pages import JST
from portal.plus_pages import Person, page, people, signed_in_page
from portal.session import client_id, current_subject

bp = Blueprint("portal_history", __name__, template_folder="templates")

PAGE = 20
CLIENT_SYSTEM = "urn:phr-platform:oauth-client"
# Plainer than the consent screen's names where those explain the protocol, not the record.
PLAIN_NAMES = {"Patient": ("基本情報", "basic details")}
ACTIONS = {"read": "action_read", "vread": "action_read", "history-instance": "action_read",
           "search-type": "action_search", "operation": "action_export"}  # fmt: skip


@bp.get("/me/history")
@signed_in_page
def history() -> ResponseReturnValue:
    subject = current_subject() or ""
    lang = current_language()
    found = reader(subject)
    cursors = _cursors(request.args.get("cursor"), found.servers)
    older: dict[str, str] = {}
    newer: dict[str, str] = {}
    found_events: list[dict[str, Any]] = []
    for server, cursor in cursors.items():
        read = functools.partial(phr.PhrClient.audit_events, count=PAGE, cursor=cursor)
        result: phr.Page | None = found.on(server, read, None)
        if result is None:
            continue
        found_events += result.resources
        if result.next_cursor:
            older[server] = result.next_cursor
        if result.previous_cursor:
            newer[server] = result.previous_cursor
    found_events.sort(key=lambda e: str(e.get("recorded", "")), reverse=True)
    everyone: dict[str, Person] = {}
    all_people = people(found)
    for p in all_people:
        everyone.update(dict.fromkeys(p.ids, p))
    names = _app_names(subject, lang)
    chosen = _filters(names, all_people)
    events = [_row(e, everyone, names, lang) for e in found_events]
    events = [e for e in events if _matches(e, chosen)]
    keep = {k: v for k, v in chosen.items() if v}
    return page(
        "plus/history.html",
        items=_grouped(events),
        older=_cursor_text(older),
        newer=_cursor_text(newer),
        filters=chosen,
        keep=keep,
        apps=sorted(names.items(), key=lambda kv: (kv[0] != client_id(), kv[1])),
        people=[(p.id, p.label(lang)) for p in all_people],
        periods=PERIODS,
    )


PERIODS = ("7", "30", "365")  # days back the period filter offers


def _filters(names: dict[str, str], all_people: list[Person]) -> dict[str, str]:
    """The filters asked for (app, child, period), each "" unless it names a known value."""
    app = request.args.get("app", "")
    child = request.args.get("child", "")
    period = request.args.get("period", "")
    return {
        "app": app if app in names else "",
        "child": child if any(p.id == child for p in all_people) else "",
        "period": period if period in PERIODS else "",
    }


def _matches(event: dict[str, Any], chosen: dict[str, str]) -> bool:
    if chosen["app"] and event["client"] != chosen["app"]:
        return False
    if chosen["child"] and chosen["child"] not in event["people"]:
        return False
    if chosen["period"]:
        since = datetime.now(JST) - timedelta(days=int(chosen["period"]))
        try:
            when = datetime.fromisoformat(event["datetime"].replace("Z", "+00:00"))
        except ValueError:
            return False
        if when.tzinfo is None or when < since:
            return False
    return True


def _grouped(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events newest first, each run of the portal's own reads (the person's own page
    views, 3–4 per visit) folded into one item, so the apps' reads stand out."""
    own = client_id()
    items: list[dict[str, Any]] = []
    for event in events:
        if event["client"] != own:
            items.append({"own": False, "event": event})
        elif items and items[-1]["own"]:
            items[-1]["events"].append(event)
        else:
            items.append({"own": True, "events": [event]})
    return items


def _cursors(text: str | None, servers: list[str]) -> dict[str, str | None]:
    """The servers to read and where each one continues: all from the newest without a
    cursor, else those the cursor names (and which still hold the person's records)."""
    if not text or len(text) > 8000 or not text.isascii():
        return dict.fromkeys(servers)
    try:
        doc = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        return dict.fromkeys(servers)
    if not isinstance(doc, dict):
        return dict.fromkeys(servers)
    return {s: str(c) for s, c in doc.items() if s in servers and isinstance(c, str)}


def _cursor_text(cursors: dict[str, str]) -> str | None:
    if not cursors:
        return None
    raw = json.dumps(cursors, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _app_names(subject: str, lang: str) -> dict[str, str]:
    """client_id → the name the person knows: their apps (from their grants, revoked ones
    too), this portal, and the cities' connectors."""
    names = {client_id(): "このポータル" if lang == "ja" else "this portal"}
    with database().session() as s:
        rows = s.execute(
            select(ConsentRecord.actor, ConsentVersion.actor_name)
            .join(ConsentVersion, ConsentVersion.consent_id == ConsentRecord.id)
            .where(ConsentRecord.subject == subject, ConsentRecord.kind == RECIPIENT)
            .order_by(ConsentVersion.version)
        )
        names.update({actor: name for actor, name in rows})
        for city in s.scalars(select(Municipality)):
            label = city.name_ja if lang == "ja" else city.name_en
            names[f"connector-{city.code}"] = label + (
                "（記録の提供）" if lang == "ja" else " (provides records)"
            )
    return names


def _row(
    event: dict[str, Any], everyone: dict[str, Person], names: dict[str, str], lang: str
) -> dict[str, Any]:
    client = next(
        (
            a["who"]["identifier"].get("value", "")
            for a in event.get("agent", [])
            if (a.get("who") or {}).get("identifier", {}).get("system") == CLIENT_SYSTEM
        ),
        "",
    )
    whose: list[str] = []
    people_seen: list[Person] = []
    kinds: Counter[str] = Counter()
    for entity in event.get("entity", []):
        ref = (entity.get("what") or {}).get("reference", "")
        rtype, _, rid = ref.partition("/")
        if rtype == "Patient" and (entity.get("type") or {}).get("code") == "1":
            person = everyone.get(rid.split("/")[0])
            if person is not None:
                whose.append(person.label(lang))
                people_seen.append(person)
        elif rtype:
            kinds[rtype] += 1
    kind_names = RESOURCE_NAMES | PLAIN_NAMES
    what = [
        f"{kind_names.get(k, (k, k))[0]}（{n}）"
        if lang == "ja"
        else f"{kind_names.get(k, (k, k))[1]} ({n})"
        for k, n in sorted(kinds.items())
    ]
    subtype = ((event.get("subtype") or [{}])[0]).get("code", "")
    recorded = str(event.get("recorded", ""))
    try:
        when = datetime.fromisoformat(recorded.replace("Z", "+00:00")).astimezone(JST)
        shown = when.strftime("%Y-%m-%d %H:%M")
    except ValueError:
        shown = recorded
    return {
        "id": event.get("id", ""),
        "client": client,
        "people": {person.id for person in people_seen},
        "who": names.get(client, client),
        "whose": whose,
        "what": what,
        "action": ACTIONS.get(subtype, "action_read"),
        "when": shown,
        "datetime": recorded,
        "failed": event.get("outcome", "0") != "0",
    }
