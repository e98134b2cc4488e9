"""The verification library against a real development authority on loopback: real keys, real
certificates, real OCSP and CRL over HTTP."""

from __future__ import annotations

import base64
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from idp.authority_sim.ca import Authority, new_key
from idp.card.errors import FAILURES, CardError
from idp.card.profile import AUTH, POLICY_OIDS, SIGN, signed_data, spki_sha256
from idp.card.verify import CardVerifier, RevocationChecker, TrustStore
from phr_core.config import ConfigError, load_settings
from tests.idp.card.conftest import ALICE, AUTH_PIN, SIGN_PIN, AuthorityEnv, dead_url

DATA = signed_data("http://127.0.0.1:8001", "session-1", "challenge-1")


def verifier(env: AuthorityEnv, **kw: float) -> CardVerifier:
    trust = TrustStore.from_pem_file(
        env.authority.root_pem_path, ca_issuer_prefixes=(env.url + "/",)
    )
    return CardVerifier(trust, RevocationChecker(trust.fetch, **kw))


def signed(card, kind: str = AUTH, data: bytes = DATA) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    pin = AUTH_PIN if kind == AUTH else SIGN_PIN
    return card.certificate_der(kind), card.sign(kind, pin, data)


def refused(code: str, v: CardVerifier, der: bytes, sig: bytes, kind: str = AUTH) -> CardError:
    with pytest.raises(CardError) as info:
        v.verify(der, sig, DATA, kind)
    assert info.value.code == code, info.value
    return info.value


def test_good_card_verifies_both_certificates(authority_env: AuthorityEnv) -> None:
    card = authority_env.card()
    v = verifier(authority_env)
    auth = v.verify(*signed(card), DATA, AUTH)
    assert auth.kind == AUTH and auth.revocation_method == "ocsp"
    assert auth.attributes is None  # no personal data in the authentication certificate
    subject = auth.certificate.subject.rfc4514_string()
    assert ALICE.name not in subject and ALICE.address not in subject
    sign = v.verify(*signed(card, SIGN), DATA, SIGN)
    assert sign.attributes == ALICE
    assert sign.pair_binding == spki_sha256(auth.certificate)


def test_expired(authority_env: AuthorityEnv) -> None:
    now = datetime.now(UTC)
    card = authority_env.card(
        not_before=now - timedelta(days=2000), not_after=now - timedelta(days=1)
    )
    refused("certificate_expired", verifier(authority_env), *signed(card))


def test_not_yet_valid(authority_env: AuthorityEnv) -> None:
    now = datetime.now(UTC)
    card = authority_env.card(
        not_before=now + timedelta(days=1), not_after=now + timedelta(days=900)
    )
    refused("certificate_not_yet_valid", verifier(authority_env), *signed(card))


def test_revoked_and_superseded(authority_env: AuthorityEnv) -> None:
    card = authority_env.card()
    der, sig = signed(card)
    authority_env.authority.revoke(card.certificate(AUTH), "key_compromise")
    refused("certificate_revoked", verifier(authority_env), der, sig)

    other = authority_env.card(name="other")
    old_der, old_sig = signed(other)
    authority_env.renew(other)
    refused("certificate_superseded", verifier(authority_env), old_der, old_sig)
    # the renewed certificate is good
    verifier(authority_env).verify(*signed(other), DATA, AUTH)


def test_unknown_ca(authority_env: AuthorityEnv, tmp_path: Path) -> None:
    stranger = Authority(tmp_path / "other_ca", authority_env.url)
    stranger.init()
    issued = stranger.issue_card(ALICE)
    der = issued.auth_cert.public_bytes(serialization.Encoding.DER)
    sig = issued.auth_key.sign(DATA, padding.PKCS1v15(), hashes.SHA256())
    refused("unknown_ca", verifier(authority_env), der, sig)


def test_self_signed(authority_env: AuthorityEnv) -> None:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "me")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(POLICY_OIDS[AUTH], None)]), False
        )
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    sig = key.sign(DATA, padding.PKCS1v15(), hashes.SHA256())
    refused("self_signed", verifier(authority_env), der, sig)


def test_wrong_key_usage(authority_env: AuthorityEnv) -> None:
    usage = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    card = authority_env.card(auth_key_usage=usage)
    refused("wrong_key_usage", verifier(authority_env), *signed(card))


def test_wrong_certificate_type(authority_env: AuthorityEnv) -> None:
    card = authority_env.card()
    v = verifier(authority_env)
    refused("wrong_certificate_type", v, *signed(card, SIGN), kind=AUTH)
    refused("wrong_certificate_type", v, *signed(card, AUTH), kind=SIGN)


def test_tampered_signature_and_tampered_data(authority_env: AuthorityEnv) -> None:
    card = authority_env.card()
    der, sig = signed(card)
    bad = bytes([sig[0] ^ 1]) + sig[1:]
    refused("bad_signature", verifier(authority_env), der, bad)
    other = card.sign(AUTH, AUTH_PIN, DATA + b"x")
    refused("bad_signature", verifier(authority_env), der, other)


def test_garbage_certificate(authority_env: AuthorityEnv) -> None:
    refused("certificate_unreadable", verifier(authority_env), b"\x30\x03\x02\x01\x01", b"x")


def test_ocsp_down_crl_fallback(authority_env: AuthorityEnv) -> None:
    """The certificate's OCSP responder does not answer (nothing listens there): the CRL does."""
    card = authority_env.card(ocsp_url=dead_url() + "/ocsp")
    result = verifier(authority_env).verify(*signed(card), DATA, AUTH)
    assert result.revocation_method == "crl"
    authority_env.authority.revoke(card.certificate(AUTH), "key_compromise")
    refused("certificate_revoked", verifier(authority_env), *signed(card))


def test_ocsp_and_crl_down_fails_closed(authority_env: AuthorityEnv) -> None:
    dead = dead_url()
    card = authority_env.card(ocsp_url=dead + "/ocsp", crl_url=dead + "/crl")
    refused("revocation_unavailable", verifier(authority_env), *signed(card))


def test_authority_stopped_fails_closed(authority_env: AuthorityEnv) -> None:
    card = authority_env.card()
    v = verifier(authority_env, ocsp_ttl=0)
    v.verify(*signed(card), DATA, AUTH)  # warm: the issuing CA is known now
    authority_env.server.shutdown()
    authority_env.server.server_close()
    err = refused("revocation_unavailable", v, *signed(card))
    assert "later" in err.message("en") and "しばらく" in err.message("ja")


def test_ocsp_answers_are_cached_briefly(authority_env: AuthorityEnv) -> None:
    card = authority_env.card()
    der, sig = signed(card)
    cached = verifier(authority_env, ocsp_ttl=60)
    cached.verify(der, sig, DATA, AUTH)
    uncached = verifier(authority_env, ocsp_ttl=0)
    uncached.verify(der, sig, DATA, AUTH)
    authority_env.authority.revoke(card.certificate(AUTH), "key_compromise")
    cached.verify(der, sig, DATA, AUTH)  # within its 60 s: the earlier answer stands
    refused("certificate_revoked", uncached, der, sig)


def test_ocsp_get_form_and_crl_reason_codes(authority_env: AuthorityEnv) -> None:
    card = authority_env.card()
    old_auth = card.certificate(AUTH)
    authority_env.renew(card)
    issuer = authority_env.authority.issuing_ca
    req = ocsp.OCSPRequestBuilder().add_certificate(old_auth, issuer, hashes.SHA1()).build()  # noqa: S303
    encoded = base64.b64encode(req.public_bytes(serialization.Encoding.DER)).decode()
    with urllib.request.urlopen(f"{authority_env.url}/ocsp/{encoded}") as resp:  # noqa: S310
        answer = ocsp.load_der_ocsp_response(resp.read())
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason == x509.ReasonFlags.superseded
    with urllib.request.urlopen(f"{authority_env.url}/crl") as resp:  # noqa: S310
        crl = x509.load_der_x509_crl(resp.read())
    assert crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(old_auth.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name == (
        "superseded"
    )
    with urllib.request.urlopen(f"{authority_env.url}/readyz") as resp:  # noqa: S310
        assert resp.status == 200


def test_authority_refuses_production(tmp_path: Path) -> None:
    from idp.authority_sim.app import create_app

    prod = load_settings({"PHR_ENV": "production", "PHR_VAR_DIR": str(tmp_path)})
    with pytest.raises(ConfigError):
        Authority.from_settings(prod)
    with pytest.raises(ConfigError):
        create_app(prod)
    assert not (tmp_path / "card_authority").exists()


def test_every_failure_has_its_own_message() -> None:
    assert len({f.ja for f in FAILURES.values()}) == len(FAILURES)
    assert len({f.en for f in FAILURES.values()}) == len(FAILURES)
    for f in FAILURES.values():
        assert f.ja and f.en and 400 <= f.status < 600


def test_issuing_ca_is_fetched_only_from_the_authority(authority_env: AuthorityEnv) -> None:
    """A certificate's caIssuers URL is read before the certificate is trusted: only the
    configured authority's URLs are fetched, so a posted certificate cannot steer requests."""
    card = authority_env.card()
    asked: list[str] = []

    def fetch(url: str, body: bytes | None, ctype: str | None) -> bytes:
        asked.append(url)
        from idp.card.trust import http_fetch

        return http_fetch(url, body, ctype)

    trust = TrustStore.from_pem_file(authority_env.authority.root_pem_path, fetch=fetch)
    v = CardVerifier(trust, RevocationChecker(fetch))
    refused("unknown_ca", v, *signed(card))
    assert asked == []  # no allowed prefix: nothing fetched at all


def test_ocsp_responder_rejects_garbage_and_foreign_issuers(
    authority_env: AuthorityEnv, tmp_path: Path
) -> None:
    request = urllib.request.Request(  # noqa: S310
        f"{authority_env.url}/ocsp",
        data=b"not an OCSP request",
        headers={"Content-Type": "application/ocsp-request"},
    )
    with urllib.request.urlopen(request) as resp:  # noqa: S310
        answer = ocsp.load_der_ocsp_response(resp.read())
    assert answer.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST

    stranger = Authority(tmp_path / "other_ca", authority_env.url)
    stranger.init()
    issued = stranger.issue_card(ALICE)
    req = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(
            issued.auth_cert,
            stranger.issuing_ca,
            hashes.SHA1(),  # noqa: S303
        )
        .build()
    )
    request = urllib.request.Request(  # noqa: S310
        f"{authority_env.url}/ocsp",
        data=req.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    with urllib.request.urlopen(request) as resp:  # noqa: S310
        answer = ocsp.load_der_ocsp_response(resp.read())
    assert answer.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_phr_card_init_and_show(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from launcher.cli import main

    env = {"PHR_VAR_DIR": str(tmp_path / "var")}
    out = CliRunner().invoke(main, ["card", "init"], env=env)
    assert out.exit_code == 0, out.output
    assert (tmp_path / "var" / "card_authority" / "root.pem").exists()
    args = ["card", "issue", "--name", "会津 花子", "--birthdate", "1990-04-01", "--sex", "female"]
    args += ["--address", "会津若松市", "--out", str(tmp_path / "c.json")]
    bad = CliRunner().invoke(main, [*args, "--auth-pin", "12", "--sign-pin", "ABC123"], env=env)
    assert bad.exit_code == 2 and "4 digits" in bad.output
    good = CliRunner().invoke(main, args, input="1234\n1234\nABC123\nABC123\n", env=env)
    assert good.exit_code == 0, good.output
    shown = CliRunner().invoke(main, ["card", "show", "--card", str(tmp_path / "c.json")], env=env)
    assert "PIN tries left 3" in shown.output and "PIN tries left 5" in shown.output
    prod = CliRunner().invoke(main, ["card", "init"], env={**env, "PHR_ENV": "production"})
    assert prod.exit_code == 1 and "never runs in production" in prod.output


def test_ocsp_cache_bound_is_configured_and_honoured(authority_env: AuthorityEnv) -> None:
    """Issue 14, item 7: a revoked card signed in for about a minute (a "good" answer reused
    60 s per worker). The bound is PHR_CARD_OCSP_CACHE_SECONDS, 10 s by default, at most 60."""
    import time

    from idp.card.services import CardServices
    from phr_core.config import load_settings

    def services(seconds: str | None) -> CardServices:
        extra = {} if seconds is None else {"PHR_CARD_OCSP_CACHE_SECONDS": seconds}
        return CardServices.from_settings(
            load_settings({**authority_env.settings.environ, **extra})
        )

    assert services(None).verifier.revocation.ocsp_ttl == 10
    for bad in ("61", "-1", "soon"):
        with pytest.raises(ValueError, match="PHR_CARD_OCSP_CACHE_SECONDS"):
            services(bad)
    card = authority_env.card()
    der, sig = signed(card)
    few_seconds = services("5").verifier
    never = services("0").verifier
    few_seconds.verify(der, sig, DATA, AUTH)
    cached_at = time.monotonic()
    never.verify(der, sig, DATA, AUTH)
    authority_env.authority.revoke(card.certificate(AUTH), "key_compromise")
    refused("certificate_revoked", never, der, sig)  # asked every time
    if time.monotonic() - cached_at < 4:  # (a slow machine may have taken longer)
        few_seconds.verify(der, sig, DATA, AUTH)  # within its bound the earlier answer stands
    time.sleep(max(0.0, cached_at + 5.2 - time.monotonic()))
    refused("certificate_revoked", few_seconds, der, sig)  # and not a moment longer
