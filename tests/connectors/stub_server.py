"""A loopback stand-in for the PHR server's transaction endpoint (transport.py's contract:
conditional updates by identifier, 201 / 200 / "unchanged" answers, atomic transactions), the
IdP's token endpoint (client secret or private_key_jwt) and the consent service's consents and
link-requests API, for the connector's tests and bench/connector_ingest.py. It keeps resources
in a dict and validates nothing, so it measures and tests the connector's side only (the real
PHR server is exercised by tests/connectors/test_phr_server_e2e.py). It can be told to fail
(503) the next N requests, or every request after N transactions; any resource holding the
text `reject-me` is refused with a 422, to exercise row isolation.

    python -m tests.connectors.stub_server [PORT]   (from the repository root)
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet


class StubState:
    # S107: a local test stub's default credential, not a real secret
    def __init__(self, client_id: str = "connector-test", secret: str = "s3cret") -> None:  # noqa: S107 - see above
        self.client_id = client_id
        self.secret = secret
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.fail_next = 0
        self.fail_after: int | None = None  # transactions accepted before failing every request
        self.transactions = 0
        self.token_requests = 0
        self.bodies: list[dict[str, Any]] = []
        self.keep_bodies = False
        self.tokens: set[str] = set()
        self.consents: dict[str, list[str]] = {}
        self.link_requests: list[dict[str, Any]] = []
        self.link_answers: dict[str, dict[str, Any]] = {}
        # private_key_jwt: the connector's public JWK; assertions are checked like the IdP
        # does (signature, iss = sub = client id, aud = this /token, exp, unused jti)
        self.jwk: dict[str, Any] | None = None
        self.jtis: set[str] = set()

    def client_ok(self, form: dict[str, str], authorization: str, token_url: str) -> bool:
        if "client_assertion" in form:
            return self.jwk is not None and self._assertion_ok(form, token_url)
        want = "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        return authorization == want

    def _assertion_ok(self, form: dict[str, str], token_url: str) -> bool:
        if self.jwk is None:
            return False
        try:
            keys = KeySet.import_key_set({"keys": [self.jwk]})
            claims = jwt.decode(form["client_assertion"], keys).claims
        except (JoseError, ValueError):
            return False
        with self.lock:
            fresh = claims.get("jti") not in self.jtis
            self.jtis.add(str(claims.get("jti")))
        return (
            fresh
            and claims.get("iss") == claims.get("sub") == self.client_id
            and claims.get("aud") == token_url
            and int(claims.get("exp", 0)) > time.time()
        )

    def resources(self, rtype: str | None = None) -> list[dict[str, Any]]:
        return [r for (t, _), r in self.store.items() if rtype is None or t == rtype]


def _strip(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k not in ("id", "meta")} | {
        "meta": {
            k: v
            for k, v in (res.get("meta") or {}).items()
            if k not in ("versionId", "lastUpdated")
        }
    }


def make_handler(state: StubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length", "0"))
            return self.rfile.read(n) if n else b""

        def _authorized(self) -> bool:
            auth = self.headers.get("Authorization", "")
            return auth.startswith("Bearer ") and auth[7:] in state.tokens

        def _maybe_fail(self) -> bool:
            with state.lock:
                if state.fail_next > 0:
                    state.fail_next -= 1
                    fail = True
                elif state.fail_after is not None and state.transactions >= state.fail_after:
                    fail = True
                else:
                    fail = False
            if fail:
                self._body()
                self._send(
                    503,
                    {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": "transient"}],
                    },
                )
            return fail

        def do_GET(self) -> None:
            if not self._authorized():
                self._send(401, {"error": "invalid_token"})
                return
            path, _, query = self.path.partition("?")
            parts = path.strip("/").split("/")
            if path.endswith("/consents"):
                cat = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get(
                    "category", ""
                )
                self._send(200, {"codes": state.consents.get(cat, [])})
            elif path.endswith("/link-requests"):
                pending = [r for r in state.link_requests if r["id"] not in state.link_answers]
                self._send(200, {"requests": pending})
            else:
                self._send(404, {"error": "not_found", "parts": len(parts)})

        def do_POST(self) -> None:
            if self.path == "/token":
                form = dict(urllib.parse.parse_qsl(self._body().decode()))
                host, port = cast(ThreadingHTTPServer, self.server).server_address[:2]
                token_url = f"http://{host!s}:{port}/token"
                auth = self.headers.get("Authorization", "")
                if not state.client_ok(form, auth, token_url):
                    self._send(401, {"error": "invalid_client"})
                    return
                if form.get("grant_type") != "client_credentials":
                    self._send(400, {"error": "unsupported_grant_type"})
                    return
                tok = uuid.uuid4().hex
                with state.lock:
                    state.tokens.add(tok)
                    state.token_requests += 1
                self._send(200, {"access_token": tok, "token_type": "Bearer", "expires_in": 300})
                return
            if "/link-requests/" in self.path:
                if not self._authorized():
                    self._send(401, {"error": "invalid_token"})
                    return
                rid = self.path.rsplit("/", 1)[1]
                state.link_answers[rid] = json.loads(self._body())
                self._send(200, {"status": "ok"})
                return
            if self.path.rstrip("/") not in ("", "/fhir"):
                self._send(404, {"error": "not_found"})
                return
            if not self._authorized():
                self._body()
                self._send(
                    401,
                    {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": "login"}],
                    },
                )
                return
            if self._maybe_fail():
                return
            bundle = json.loads(self._body())
            if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
                self._send(
                    400,
                    {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": "invalid"}],
                    },
                )
                return
            if state.keep_bodies:
                state.bodies.append(bundle)
            out = []
            with state.lock:
                staged: dict[tuple[str, str], dict[str, Any]] = {}
                for e in bundle.get("entry", []):
                    req = e.get("request", {})
                    url = req.get("url", "")
                    rtype, _, cond = url.partition("?identifier=")
                    res = e.get("resource") or {}
                    if req.get("method") != "PUT" or not cond or res.get("resourceType") != rtype:
                        self._send(
                            400,
                            {
                                "resourceType": "OperationOutcome",
                                "issue": [
                                    {
                                        "severity": "error",
                                        "code": "invalid",
                                        "expression": ["Bundle.entry.request"],
                                    }
                                ],
                            },
                        )
                        return
                    if "reject-me" in json.dumps(res):
                        self._send(
                            422,
                            {
                                "resourceType": "OperationOutcome",
                                "issue": [
                                    {
                                        "severity": "error",
                                        "code": "processing",
                                        "expression": [rtype],
                                        "diagnostics": "value reject-me refused",
                                    }
                                ],
                            },
                        )
                        return
                    key = (rtype, cond)
                    old = staged.get(key) or state.store.get(key)
                    new = _strip(res)
                    status: dict[str, Any]
                    if old is None:
                        status = {"status": "201 Created"}
                    elif _strip(old) == new:
                        status = {
                            "status": "200 OK",
                            "outcome": {
                                "resourceType": "OperationOutcome",
                                "issue": [
                                    {
                                        "severity": "information",
                                        "code": "informational",
                                        "diagnostics": "unchanged",
                                    }
                                ],
                            },
                        }
                    else:
                        status = {"status": "200 OK"}
                    staged[key] = res
                    out.append({"response": status})
                state.store.update(staged)
                state.transactions += 1
            self._send(
                200, {"resourceType": "Bundle", "type": "transaction-response", "entry": out}
            )

    return Handler


class StubServer:
    """`with StubServer() as s: s.url` — a threaded HTTP server on 127.0.0.1, any free port."""

    def __init__(self, state: StubState | None = None) -> None:
        self.state = state or StubState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    """`python -m tests.connectors.stub_server [PORT]`: serve on 127.0.0.1 until interrupted;
    prints the base URL first (client id `connector-test`, secret `s3cret`)."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    state = StubState()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), make_handler(state))
    httpd.daemon_threads = True
    print(f"http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
