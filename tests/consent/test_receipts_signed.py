"""Issue 20, "receipts a person can prove": a consent receipt is a compact JWS signed by the
consent service's published receipt key; any changed byte, another key, an unknown kid or
another algorithm is refused (consent.receipts_signed, `phr consent verify-receipt`), keys
rotate without breaking earlier receipts, and the documented joserfc snippet verifies one."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jws
from joserfc.jwk import ECKey, OctKey

from consent import receipts_cli, receipts_signed
from consent.receipts_signed import ReceiptError
from federation import jose
from launcher.cli import main
from phr_core import receipt_keys
from phr_core.config import ConfigError, Settings, load_settings
from tests.browser import live_server
from tests.consent.conftest import Tokens, link_city
from tests.consent.test_receipts import MOTHER, _grant  # the same app grant

ROOT = Path(__file__).resolve().parents[2]
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _signed(client: FlaskClient, tokens: Tokens, gid: str, version: int | None = None) -> str:
    query = f"?version={version}" if version else ""
    r = client.get(f"/api/v1/consents/{gid}/receipt.jws{query}", headers=tokens.idp)
    assert r.status_code == 200 and r.mimetype == "application/jose"
    return r.get_data(as_text=True).strip()


def _jwks(client: FlaskClient) -> dict[str, Any]:
    r = client.get("/receipts/jwks.json")  # public: no token
    assert r.status_code == 200 and "max-age" in r.headers["Cache-Control"]
    return dict(r.json)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _reasons(token: str, jwks: dict[str, Any]) -> str:
    with pytest.raises(ReceiptError) as caught:
        receipts_signed.verify(token, jwks)
    return caught.value.reason


def test_a_receipt_is_signed_verifies_and_every_changed_byte_fails(
    client: FlaskClient, tokens: Tokens, migrated: Settings, db_backend: str
) -> None:
    gid = _grant(client, tokens)
    client.post(f"/api/v1/grants/{gid}/revoke", headers=tokens.idp)
    token = _signed(client, tokens, gid, version=1)
    jwks = _jwks(client)
    claims = receipts_signed.verify(token, jwks)
    plain = client.get(f"/api/v1/consents/{gid}/receipt?version=1", headers=tokens.idp).json
    assert {k: v for k, v in claims.items() if k not in ("iss", "iat")} == plain
    assert claims["iss"] == migrated.urls["consent"] and claims["status"] == "active"
    assert receipts_signed.header_of(token)["kid"] == receipt_keys.signing_key(migrated).kid
    # The federation vouches for the same keys.
    statement = client.get("/.well-known/openid-federation").get_data(as_text=True)
    published = jose.peek(statement)[1]["metadata"]["phr_consent_receipts"]
    assert published["jwks"] == jwks and published["jwks_uri"].endswith("/receipts/jwks.json")

    # Every character changed to its base64url neighbour (the lowest bit flipped, the change a
    # lax decoder may miss in a part's last character), every dot, and one byte cut off. The
    # signature does not depend on the database: on the second one, every character of the
    # header and the signature and every 13th of the payload, to keep the suite fast.
    start, end = token.index("."), token.rindex(".")
    positions = [i for i in range(len(token)) if not start < i < end or i % 13 == 0]
    for i in range(len(token)) if db_backend == "sqlite" else positions:
        ch = token[i]
        other = B64URL[B64URL.index(ch) ^ 1] if ch in B64URL else "A"
        tampered = token[:i] + other + token[i + 1 :]
        with pytest.raises(ReceiptError):
            receipts_signed.verify(tampered, jwks)
    assert _reasons(token[:-1], jwks) == receipts_signed.MALFORMED
    # The payload changed and re-encoded cleanly: the signature no longer matches.
    header, _, signature = token.split(".")
    forged = dict(claims, status="revoked")
    assert _reasons(f"{header}.{_b64(forged)}.{signature}", jwks) == receipts_signed.BAD_SIGNATURE


def test_another_key_an_unknown_kid_and_another_algorithm_are_refused(
    client: FlaskClient, tokens: Tokens, migrated: Settings
) -> None:
    gid = _grant(client, tokens)
    jwks = _jwks(client)
    claims = receipts_signed.verify(_signed(client, tokens, gid), jwks)
    intruder = ECKey.generate_key("P-256", private=True)
    intruder.ensure_kid()
    payload = json.dumps(claims).encode()

    def signed_by(key: Any, header: dict[str, Any], alg: str) -> str:
        return jws.serialize_compact(header, payload, key, algorithms=[alg])

    typ = receipts_signed.TYP
    own_kid = receipt_keys.signing_key(migrated).kid
    unknown = signed_by(intruder, {"alg": "ES256", "kid": intruder.kid, "typ": typ}, "ES256")
    assert _reasons(unknown, jwks) == receipts_signed.UNKNOWN_KID
    posing = signed_by(intruder, {"alg": "ES256", "kid": own_kid, "typ": typ}, "ES256")
    assert _reasons(posing, jwks) == receipts_signed.BAD_SIGNATURE
    # HS256 "signed" with the public key's bytes: the classic algorithm confusion.
    public = OctKey.import_key(json.dumps(jwks["keys"][0]).encode())
    hmac = signed_by(public, {"alg": "HS256", "kid": own_kid, "typ": typ}, "HS256")
    assert _reasons(hmac, jwks) == receipts_signed.WRONG_ALGORITHM
    none = f"{_b64({'alg': 'none', 'kid': own_kid, 'typ': typ})}.{_b64(claims)}."
    assert _reasons(none, jwks) == receipts_signed.WRONG_ALGORITHM
    # Another consent service (another receipt key) signs a receipt: not ours.
    other = replace(migrated, environ={**migrated.environ, "PHR_CONSENT_RECEIPT_KEY": "x" * 40})
    assert _reasons(receipts_signed.sign(claims, other), jwks) == receipts_signed.UNKNOWN_KID


def test_the_portal_gives_the_person_their_own_signed_receipt(
    client: FlaskClient, tokens: Tokens
) -> None:
    gid = _grant(client, tokens)
    assert client.get(f"/me/consents/{gid}/receipt").status_code == 302  # sign in first
    with client.session_transaction() as sess:
        sess["sub"] = "phr-sub-someone-else"
    assert client.get(f"/me/consents/{gid}/receipt").status_code == 404
    with client.session_transaction() as sess:
        sess["sub"] = MOTHER
    page = client.get("/me/apps").get_data(as_text=True)
    assert f'href="/me/consents/{gid}/receipt"' in page
    r = client.get(f"/me/consents/{gid}/receipt")
    assert r.status_code == 200 and r.mimetype == "application/jose"
    assert r.headers["Content-Disposition"] == (
        f'attachment; filename="consent-receipt-{gid}-v1.jws"'
    )
    claims = receipts_signed.verify(r.get_data(as_text=True), _jwks(client))
    assert claims["record_id"] == gid and claims["pii_principal_id"] == MOTHER
    # The consent to the city, on the data-sources page.
    city_consent = link_city(client, tokens, MOTHER, "CODE-MOTHER-S")
    page = client.get("/me/sources").get_data(as_text=True)
    assert f'href="/me/consents/{city_consent}/receipt"' in page
    r = client.get(f"/me/consents/{city_consent}/receipt")
    claims = receipts_signed.verify(r.get_data(as_text=True), _jwks(client))
    assert claims["record_id"] == city_consent and claims["purposes"][0]["third_party"] is None


def _verify_cli(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["consent", "verify-receipt", *args], env=env)
    return result.exit_code, result.output


def test_verify_receipt_command_exit_codes(
    client: FlaskClient, consent_app: Flask, tokens: Tokens, tmp_path: Path
) -> None:
    gid = _grant(client, tokens)
    token = _signed(client, tokens, gid)
    good = tmp_path / "receipt.jws"
    good.write_text(token)
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(_jwks(client)))

    code, out = _verify_cli([str(good), "--jwks", str(keys)])
    assert code == 0, out
    assert "verified" in out and gid in out and "すくすく成長アプリ" in out

    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    bad = tmp_path / "tampered.jws"
    bad.write_text(f"{header}.{_b64(dict(claims, status='revoked'))}.{signature}")
    code, out = _verify_cli([str(bad), "--jwks", str(keys)])
    assert code == receipts_cli.NOT_VERIFIED and "NOT VERIFIED (bad_signature)" in out

    other = tmp_path / "other-keys.json"
    stranger = ECKey.generate_key("P-256", private=True)
    other.write_text(json.dumps({"keys": [stranger.as_dict(private=False)]}))
    code, out = _verify_cli([str(good), "--jwks", str(other)])
    assert code == receipts_cli.NOT_VERIFIED and "NOT VERIFIED (unknown_kid)" in out

    hs = tmp_path / "hs256.jws"
    hs.write_text(f"{_b64({'alg': 'HS256', 'typ': receipts_signed.TYP})}.{payload}.{signature}")
    code, out = _verify_cli([str(hs), "--jwks", str(keys)])
    assert code == receipts_cli.NOT_VERIFIED and "NOT VERIFIED (wrong_algorithm)" in out

    code, out = _verify_cli([str(good), "--jwks", str(tmp_path / "missing.json")])
    assert code == receipts_cli.CANNOT_CHECK and "cannot read the key set" in out

    # Online: the keys the consent service at PHR_CONSENT_URL publishes.
    with live_server(consent_app) as url:
        code, out = _verify_cli([str(good)], env={"PHR_CONSENT_URL": url})
        assert code == 0, out
        code, out = _verify_cli([str(bad)], env={"PHR_CONSENT_URL": url})
        assert code == receipts_cli.NOT_VERIFIED


def test_rotation_keeps_earlier_receipts_verifiable(
    client: FlaskClient, tokens: Tokens, migrated: Settings, tmp_path: Path
) -> None:
    gid = _grant(client, tokens)
    before = _signed(client, tokens, gid)
    old_kid = receipts_signed.header_of(before)["kid"]

    new_kid, every, path = receipts_cli.rotate(migrated)
    assert every == [new_kid, old_kid] and path == migrated.secrets_dir / "PHR_CONSENT_RECEIPT_KEY"
    after = _signed(client, tokens, gid)  # the running app signs with the new key at once
    assert receipts_signed.header_of(after)["kid"] == new_kid
    jwks = _jwks(client)
    assert [k["kid"] for k in jwks["keys"]] == [new_kid, old_kid]
    assert receipts_signed.verify(before, jwks)["record_id"] == gid
    assert receipts_signed.verify(after, jwks)["record_id"] == gid
    result = CliRunner().invoke(main, ["consent", "rotate-receipt-key"], env=dict(migrated.environ))
    assert result.exit_code == 0, result.output
    third = receipt_keys.signing_key(migrated).kid
    assert f"signed with key {third}" in result.output
    assert [k["kid"] for k in _jwks(client)["keys"]] == [third, new_kid, old_kid]

    # The JSON form: a JWK Set whose retired keys are public halves only.
    signer = ECKey.generate_key("P-256", private=True)
    retired = ECKey.generate_key("P-256", private=True)
    kept = tmp_path / "receipt-keys.json"
    kept.write_text(json.dumps({"keys": [signer.as_dict(), retired.as_dict(private=False)]}))
    json_form = load_settings({**migrated.environ, "PHR_CONSENT_RECEIPT_KEY_FILE": str(kept)})
    newest, every, _ = receipts_cli.rotate(json_form)
    signer.ensure_kid()
    retired.ensure_kid()
    assert every == [newest, signer.kid, retired.kid]
    assert receipt_keys.signing_key(json_form).kid == newest
    # The command line: a key in the environment cannot be rotated from here; it says how.
    env = {**migrated.environ, "PHR_CONSENT_RECEIPT_KEY": "y" * 40}
    with pytest.raises(ConfigError, match="in front of its value"):
        receipts_cli.rotate(load_settings(env))
    result = CliRunner().invoke(main, ["consent", "rotate-receipt-key"], env=env)
    assert result.exit_code == 1 and "in front of its value" in result.output


def test_the_documented_snippet_verifies_a_receipt(
    client: FlaskClient, consent_app: Flask, tokens: Tokens, tmp_path: Path
) -> None:
    doc = (ROOT / "docs" / "receipts.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(.*?)```", doc, re.S)
    assert snippet is not None
    code = snippet.group(1)
    example = "https://consent.example.city/receipts/jwks.json"
    assert example in code and '"consent-receipt.jws"' in code
    gid = _grant(client, tokens)
    token = _signed(client, tokens, gid)
    (tmp_path / "consent-receipt.jws").write_text(token)
    with live_server(consent_app) as url:
        script = tmp_path / "verify.py"
        script.write_text(code.replace(example, url + "/receipts/jwks.json"))
        run = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == [
            claims["receipt_id"],
            "active",
            "予防接種の予定を表示するため",
        ]
        forged = f"{header}.{_b64(dict(claims, status='revoked'))}.{signature}"
        (tmp_path / "consent-receipt.jws").write_text(forged)
        run = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert run.returncode != 0 and "BadSignatureError" in run.stderr
