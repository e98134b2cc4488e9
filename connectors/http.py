"""A small HTTP/1.1 JSON client on the standard library: keep-alive, TLS verified (against a
configured CA file or the system store), plain http only to loopback, and errors that never
carry response bodies into logs. Used for the IdP, the consent service and the PHR server."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from connectors.client_key import ClientAssertion
from phr_core import jsonbytes, request_ids
from phr_core.config import is_loopback_host


class TransportError(RuntimeError):
    """The remote side could not be reached or answered with a server error; worth retrying."""


class ServerError(TransportError):
    """The remote side answered 5xx or 429. Retried as a TransportError; the PHR transport
    tells a server that fails on one batch's content (a repeated 500 while it handles others)
    from one that is down or busy."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class HttpError(RuntimeError):
    """The remote side answered with a client error (4xx); not worth retrying as is."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any


def check_url(url: str) -> None:
    """Refuse plain http off loopback: health data and tokens travel only over TLS."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return
    raise ValueError(f"refusing {parts.scheme}:// to {parts.hostname}: use https:// (TLS)")


class JsonClient:
    """One persistent connection per base URL (not shared between threads)."""

    def __init__(self, base_url: str, *, ca_file: str | None = None, timeout: float = 60.0) -> None:
        check_url(base_url)
        self.base = base_url.rstrip("/")
        parts = urlsplit(self.base)
        self._scheme = parts.scheme
        self._host = parts.hostname or "localhost"
        self._port = parts.port
        self._prefix = parts.path
        self._timeout = timeout
        self._ctx: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ctx = ssl.create_default_context(cafile=ca_file)
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._ctx is not None:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._ctx
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Response:
        """Send one request; connection failures and 5xx/429 raise TransportError, 4xx HttpError."""
        hdrs = request_ids.outgoing({"Accept": "application/json", **(headers or {})})
        body: bytes | None = raw
        if json_body is not None:
            body = jsonbytes.dumps(json_body)
            hdrs["Content-Type"] = content_type
        elif form is not None:
            body = urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        url = self._prefix + path
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    conn.request(method, url, body=body, headers=hdrs)
                    resp = conn.getresponse()
                    data = resp.read()
                    status = resp.status
                    rh = {k.lower(): v for k, v in resp.getheaders()}
                    if rh.get("connection", "").lower() == "close":
                        self.close()
                    break
                except (OSError, http.client.HTTPException) as exc:
                    self.close()
                    # A kept-alive connection the server closed: reconnect once at once.
                    if attempt == 1 and isinstance(
                        exc, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError
                    ):
                        continue
                    raise TransportError(f"{method} {self._host}: {type(exc).__name__}") from None
        parsed: Any = None
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
        if status >= 500 or status == 429:
            where = f"{method} {self._host}{url.split('?')[0]}"
            raise ServerError(status, f"{where}: HTTP {status}", parsed)
        if status >= 400:
            raise HttpError(status, f"{method} {url.split('?')[0]}", parsed)
        return Response(status, rh, parsed)


def basic_auth(client_id: str, secret: str) -> str:
    """client_secret_basic (RFC 6749 §2.3.1): both parts form-urlencoded, then base64."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(pair).decode()


class TokenError(HttpError):
    """The IdP refused the connector's token request: the RFC 6749 error and its description
    (which name the problem: wrong key, expired or replayed assertion), never a credential."""

    def __init__(self, status: int, error: str, description: str) -> None:
        detail = f"{error} ({description})" if description else error
        super().__init__(status, f"the IdP refused the connector's token request: {detail}")
        self.error = error
        self.description = description


class TokenSource:
    """Client-credentials access tokens from the IdP's token endpoint, one per resource
    (RFC 8707 `resource`), cached until shortly before they expire. The client authenticates
    with `private_key_jwt` (a fresh RFC 7523 assertion per request) when given a signer,
    else with `client_secret_basic`."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        secret: str | None = None,
        *,
        signer: ClientAssertion | None = None,
        scope: str = "system/*.cu",
        ca_file: str | None = None,
    ) -> None:
        if (secret is None) == (signer is None):
            raise ValueError("give the connector either a client secret or a signing key")
        self.client = JsonClient(issuer, ca_file=ca_file)
        self.client_id = client_id
        self._secret = secret
        self._signer = signer
        self.scope = scope
        self._tokens: dict[str, tuple[str, float]] = {}

    @property
    def token_endpoint(self) -> str:
        return self.client.base + "/token"

    def token(self, resource: str, *, refresh: bool = False, scope: str | None = None) -> str:
        scope = scope or self.scope
        hit = self._tokens.get(f"{scope} {resource}")
        if hit and not refresh and hit[1] > time.monotonic():
            return hit[0]
        form = {"grant_type": "client_credentials", "scope": scope, "resource": resource}
        headers: dict[str, str] = {}
        if self._signer is not None:
            form.update(self._signer.form(self.token_endpoint))
        else:
            headers["Authorization"] = basic_auth(self.client_id, self._secret or "")
        try:
            resp = self.client.request("POST", "/token", form=form, headers=headers)
        except HttpError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            error = body.get("error")
            if not isinstance(error, str):
                raise
            desc = body.get("error_description")
            raise TokenError(exc.status, error, desc if isinstance(desc, str) else "") from None
        body = resp.body or {}
        access = body.get("access_token")
        if not isinstance(access, str):
            raise HttpError(resp.status, "token response without access_token")
        ttl = float(body.get("expires_in", 300))
        self._tokens[f"{scope} {resource}"] = (access, time.monotonic() + max(ttl - 30, 5))
        return access
