"""Trust-chain resolutions per second, in one process (no network: the authorities are the
real Flask apps on SQLite, reached through their WSGI test clients).

    .venv/bin/python bench/federation_resolve.py [--seconds 3]

Measures a fresh resolution (every statement fetched, every signature verified, policies
combined and applied) for an app directly below the anchor and one below a prefecture, and a
cached resolution (what the IdP and PHR servers do until a chain expires). The figures include
the authorities' own work of signing statements, which a real verifier would not pay; the
load average is printed because a busy machine lowers them.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from joserfc.jwk import ECKey

from federation import jose, keys
from federation.authority import store
from federation.entity import statement
from federation.entity.fetch import Fetched
from federation.entity.trust_chain import Resolver
from phr_core import migrations
from phr_core.config import load_settings
from phr_core.services import get_service


class Wsgi:
    def __init__(self) -> None:
        self.apps: dict = {}

    def _call(self, url: str, form: dict | None):  # type: ignore[no-untyped-def]
        p = urlsplit(url)
        client = self.apps[f"{p.scheme}://{p.netloc}"].test_client()
        path = p.path + (f"?{p.query}" if p.query else "")
        r = client.post(path, data=form) if form is not None else client.get(path)
        return Fetched(r.status_code, r.mimetype or "", r.get_data(as_text=True))

    def get(self, url: str) -> Fetched:
        return self._call(url, None)

    def post(self, url: str, form: dict[str, str]) -> Fetched:
        return self._call(url, form)


def authority(tmp: Path, name: str, port: int, hints: str = ""):  # type: ignore[no-untyped-def]
    from federation.app import create_app

    env = {
        "PHR_VAR_DIR": str(tmp / name),
        "PHR_FEDERATION_DATABASE_URL": f"sqlite:///{tmp / name}.db",
        "PHR_FEDERATION_URL": f"http://127.0.0.1:{port}",
        "PHR_FEDERATION_AUTHORITY_HINTS": hints,
        "PHR_LOG_LEVEL": "WARNING",
    }
    s = load_settings(env)
    migrations.upgrade(get_service("federation"), s.database_urls["federation"])
    return create_app(s), s


def leaf_app(entity_id: str, key: ECKey, hint: str):  # type: ignore[no-untyped-def]
    from flask import Flask, Response

    app = Flask("leaf")
    md = {
        "openid_relying_party": {
            "redirect_uris": [entity_id + "/cb"],
            "jwks": jose.public_jwks(key),
            "token_endpoint_auth_method": "private_key_jwt",
        }
    }

    @app.get(statement.WELL_KNOWN)
    def ec() -> Response:
        token = statement.sign_configuration(entity_id, key, md, authority_hints=[hint])
        return Response(token, mimetype=statement.MEDIA_TYPE)

    return app


def rate(fn, seconds: float) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start), n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        fetch = Wsgi()
        anchor, a_s = authority(tmp, "anchor", 18006)
        pref, p_s = authority(tmp, "pref", 18007, hints=a_s.urls["federation"])
        for app, s in ((anchor, a_s), (pref, p_s)):
            fetch.apps[s.urls["federation"]] = app
        with anchor.extensions["phr_db"].session() as ses:
            pref_jwks = jose.public_jwks(keys.entity_key(p_s, "federation"))
            store.add(ses, p_s.urls["federation"], pref_jwks, intermediate=True)
        leaves = {}
        for name, port, superior, sup_s in (
            ("direct", 18010, anchor, a_s),
            ("via-prefecture", 18011, pref, p_s),
        ):
            key = ECKey.generate_key("P-256")
            key.ensure_kid()
            entity_id = f"http://127.0.0.1:{port}"
            fetch.apps[entity_id] = leaf_app(entity_id, key, sup_s.urls["federation"])
            with superior.extensions["phr_db"].session() as ses:
                store.add(ses, entity_id, jose.public_jwks(key))
            leaves[name] = entity_id
        anchors = {a_s.urls["federation"]: jose.public_jwks(keys.entity_key(a_s, "federation"))}
        resolver = Resolver(fetch, anchors)
        for name, entity_id in leaves.items():
            per_s, n = rate(lambda e=entity_id: resolver.resolve(e, fresh=True), args.seconds)
            print(f"fresh resolution, {name:<15} {per_s:8.1f}/s  {1000 / per_s:6.2f} ms  (n={n})")
        per_s, n = rate(lambda: resolver.resolve(leaves["via-prefecture"]), args.seconds)
        print(f"cached resolution               {per_s:8.0f}/s  {1e6 / per_s:6.2f} µs  (n={n})")
        print(f"load average: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
        for app in (anchor, pref):
            app.extensions["phr_db"].dispose()


if __name__ == "__main__":
    main()
