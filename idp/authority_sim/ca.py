"""The development stand-in for the card authority (J-LIS): a root CA, an issuing CA, an index
of issued certificates and revocations, signed old→new renewal links, OCSP answers and CRLs.

State lives in one folder (default $PHR_VAR_DIR/card_authority/); the private keys there are
unencrypted development keys, which is why this never runs in production mode.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from idp.authority_sim import certificates, status
from idp.authority_sim.certificates import new_key
from idp.authority_sim.status import REASONS
from idp.card.link_format import canonical_link_bytes, new_link
from idp.card.profile import (
    ATTRIBUTE_OIDS,
    AUTH,
    PAIR_BINDING_OID,
    POLICY_OIDS,
    SIGN,
    BasicAttributes,
    der_utf8string,
    fingerprint,
    spki_sha256,
)
from phr_core.config import ConfigError, Settings


class AuthorityError(RuntimeError):
    """The authority cannot do what was asked (the message says why)."""


def authority_dir(settings: Settings) -> Path:
    return settings.var_dir / "card_authority"


def fifth_birthday_after(birthdate: date, issued: date) -> date:
    """JPKI certificates are valid until the 5th birthday after issuance."""
    count, year = 0, issued.year
    while True:
        try:
            bday = birthdate.replace(year=year)
        except ValueError:  # 29 February in a common year
            bday = date(year, 2, 28)
        if bday > issued:
            count += 1
            if count == 5:
                return bday
        year += 1


@dataclass(frozen=True)
class IssuedCard:
    auth_cert: x509.Certificate
    auth_key: rsa.RSAPrivateKey
    sign_cert: x509.Certificate
    sign_key: rsa.RSAPrivateKey


class Authority:
    """One authority's state folder. Every method re-reads the index, so several processes (the
    CLI and the served app) can share the folder; writes hold a file lock."""

    def __init__(self, folder: Path, base_url: str) -> None:
        self.folder = Path(folder)
        self.base_url = base_url.rstrip("/")
        self._root: x509.Certificate | None = None
        self._ca: x509.Certificate | None = None
        self._ca_key: rsa.RSAPrivateKey | None = None

    # --- setup ------------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings) -> Authority:
        """The development authority of these settings; refused in production mode."""
        if settings.production:
            raise ConfigError("the card authority stand-in never runs in production mode")
        return cls(authority_dir(settings), settings.option("PHR_CARD_AUTHORITY_URL"))

    @property
    def root_pem_path(self) -> Path:
        return self.folder / "root.pem"

    @property
    def initialised(self) -> bool:
        return (self.folder / "issuing.key.pem").exists() and self.root_pem_path.exists()

    def init(self) -> bool:
        """Create the root and issuing CAs once; True when they were made now."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            if self.initialised:
                return False
            root_key, root, ca_key, ca = certificates.new_ca_pair()
            _write_private(self.folder / "root.key.pem", _key_pem(root_key))
            _write_private(self.folder / "issuing.key.pem", _key_pem(ca_key))
            (self.folder / "issuing.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
            self._save({"certs": {}, "links": []})
            tmp = self.root_pem_path.with_suffix(".tmp")
            tmp.write_bytes(root.public_bytes(serialization.Encoding.PEM))
            tmp.replace(self.root_pem_path)  # last: its presence means "initialised"
            return True

    @property
    def root(self) -> x509.Certificate:
        if self._root is None:
            self._require()
            self._root = x509.load_pem_x509_certificate(self.root_pem_path.read_bytes())
        return self._root

    @property
    def issuing_ca(self) -> x509.Certificate:
        if self._ca is None:
            self._require()
            self._ca = x509.load_pem_x509_certificate((self.folder / "issuing.pem").read_bytes())
        return self._ca

    @property
    def _issuing_key(self) -> rsa.RSAPrivateKey:
        if self._ca_key is None:
            self._require()
            key = serialization.load_pem_private_key(
                (self.folder / "issuing.key.pem").read_bytes(), password=None
            )
            assert isinstance(key, rsa.RSAPrivateKey)  # noqa: S101 - narrowing: its own RSA key
            self._ca_key = key
        return self._ca_key

    def _require(self) -> None:
        if not self.initialised:
            raise AuthorityError(
                f"the card authority in {self.folder} is not initialised (run `phr card init`)"
            )

    # --- issuing ----------------------------------------------------------------------------

    def issue_card(
        self,
        attrs: BasicAttributes,
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        ocsp_url: str | None = None,
        crl_url: str | None = None,
        auth_key_usage: x509.KeyUsage | None = None,
    ) -> IssuedCard:
        """Both certificates of a new card. The keyword arguments exist for tests of bad
        certificates (expired, not yet valid, wrong key usage, unreachable responder)."""
        auth_key, sign_key = new_key(), new_key()
        auth = self.issue_certificate(
            AUTH,
            auth_key.public_key(),
            attrs,
            not_before=not_before,
            not_after=not_after,
            ocsp_url=ocsp_url,
            crl_url=crl_url,
            key_usage=auth_key_usage,
        )
        sign = self.issue_certificate(
            SIGN,
            sign_key.public_key(),
            attrs,
            paired_auth=auth,
            not_before=not_before,
            not_after=not_after,
            ocsp_url=ocsp_url,
            crl_url=crl_url,
        )
        return IssuedCard(auth, auth_key, sign, sign_key)

    def issue_certificate(
        self,
        kind: str,
        public_key: rsa.RSAPublicKey,
        attrs: BasicAttributes,
        *,
        paired_auth: x509.Certificate | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        ocsp_url: str | None = None,
        crl_url: str | None = None,
        key_usage: x509.KeyUsage | None = None,
    ) -> x509.Certificate:
        ca = self.issuing_ca
        now = datetime.now(UTC)
        start = not_before or (now - timedelta(minutes=1))
        end = not_after or datetime.combine(
            fifth_birthday_after(date.fromisoformat(attrs.birthdate), now.date()),
            datetime.min.time(),
            tzinfo=UTC,
        )
        if kind == AUTH:
            # No personal data in the authentication certificate: an opaque random name.
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI (development)"),
                    x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(12)),
                ]
            )
            usage = key_usage or certificates.leaf_key_usage(non_repudiation=False)
        else:
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI (development)"),
                    x509.NameAttribute(NameOID.COMMON_NAME, attrs.name),
                ]
            )
            usage = key_usage or certificates.leaf_key_usage(non_repudiation=True)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(
                x509.CertificatePolicies([x509.PolicyInformation(POLICY_OIDS[kind], None)]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._issuing_key.public_key()),
                False,
            )
            .add_extension(
                certificates.authority_access(
                    ocsp_url or f"{self.base_url}/ocsp", f"{self.base_url}/ca/issuing.der"
                ),
                critical=False,
            )
            .add_extension(
                certificates.crl_distribution(crl_url or f"{self.base_url}/crl"), critical=False
            )
        )
        if kind == SIGN:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.OtherName(oid, der_utf8string(getattr(attrs, field)))
                        for field, oid in ATTRIBUTE_OIDS.items()
                    ]
                ),
                critical=False,
            )
            if paired_auth is not None:
                digest = spki_sha256(paired_auth)
                builder = builder.add_extension(
                    x509.UnrecognizedExtension(PAIR_BINDING_OID, b"\x04\x20" + digest),
                    critical=False,
                )
        cert = builder.sign(self._issuing_key, hashes.SHA256())
        with self._locked():
            state = self._load()
            state["certs"][_serial_key(cert.serial_number)] = {
                "kind": kind,
                "fingerprint": fingerprint(cert.public_bytes(serialization.Encoding.DER)),
                "issued_at": now.isoformat(),
                "not_after": end.isoformat(),
                "revoked_at": None,
                "reason": None,
            }
            self._save(state)
        return cert

    # --- revocation and renewal -------------------------------------------------------------

    def revoke(self, cert: x509.Certificate, reason: str = "key_compromise") -> None:
        if reason not in REASONS or reason == "remove_from_crl":
            raise AuthorityError(f"unknown CRL reason {reason!r}; one of {', '.join(REASONS)}")
        with self._locked():
            state = self._load()
            entry = state["certs"].get(_serial_key(cert.serial_number))
            if entry is None:
                raise AuthorityError("this authority did not issue that certificate")
            if entry["revoked_at"] is None:
                entry["revoked_at"] = datetime.now(UTC).isoformat()
                entry["reason"] = reason
            self._save(state)

    def reissue_signature(
        self, auth_cert: x509.Certificate, old_sign: x509.Certificate, attrs: BasicAttributes
    ) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        """A move or a change of name: JPKI revokes the signature certificate
        (`affiliation_changed`) and issues a new one on the same card; the user-authentication
        certificate stays valid. The new one carries the same pair binding."""
        key = new_key()
        cert = self.issue_certificate(SIGN, key.public_key(), attrs, paired_auth=auth_cert)
        self.revoke(old_sign, "affiliation_changed")
        return cert, key

    def renew(
        self,
        old_auth: x509.Certificate,
        old_sign: x509.Certificate,
        attrs: BasicAttributes,
    ) -> IssuedCard:
        """New key pairs and certificates for the same person; the old ones are revoked as
        `superseded` and a signed old→new link is published for each."""
        card = self.issue_card(attrs)
        for old, new in ((old_auth, card.auth_cert), (old_sign, card.sign_cert)):
            self.publish_link(old, new)
            self.revoke(old, "superseded")
        return card

    def publish_link(self, old: x509.Certificate, new: x509.Certificate) -> dict:
        """Publish a signed old→new renewal link (the stand-in for 証明書新旧紐付け情報)."""
        der = serialization.Encoding.DER
        link = new_link(
            fingerprint(old.public_bytes(der)),
            fingerprint(new.public_bytes(der)),
            datetime.now(UTC),
        )
        signature = self._issuing_key.sign(
            canonical_link_bytes(link), padding.PKCS1v15(), hashes.SHA256()
        )
        signed = {"link": link, "signature": base64.b64encode(signature).decode()}
        with self._locked():
            state = self._load()
            state["links"].append(signed)
            self._save(state)
        return signed

    def links(self, *, old: str | None = None, new: str | None = None) -> list[dict]:
        return [
            s
            for s in self._load()["links"]
            if (old is None or s["link"]["old"] == old) and (new is None or s["link"]["new"] == new)
        ]

    # --- status: OCSP and CRL (idp.authority_sim.status) ---------------------------------

    def ocsp_response(self, request_der: bytes) -> bytes:
        """An RFC 6960 response to a DER request, signed by the issuing CA."""
        return status.ocsp_response(
            request_der,
            self.issuing_ca,
            self._issuing_key,
            lambda serial: self._load()["certs"].get(_serial_key(serial)),
        )

    def crl(self) -> bytes:
        """The current CRL (DER), with reason codes."""
        return status.crl(self.issuing_ca, self._issuing_key, self._load()["certs"])

    # --- storage ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.folder / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _load(self) -> dict:
        try:
            return json.loads((self.folder / "index.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"certs": {}, "links": []}

    def _save(self, state: dict) -> None:
        tmp = self.folder / "index.json.tmp"
        tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
        tmp.replace(self.folder / "index.json")


def init_authority(settings: Settings) -> Authority:
    """Create the development card authority (root and issuing CA) if it does not exist yet,
    and return it. Refused in production mode. Call this before serving the IdP in development
    (`phr dev run`); the IdP's PHR_CARD_TRUST_ROOT default points at its root.pem."""
    authority = Authority.from_settings(settings)
    authority.init()
    return authority


def _serial_key(serial: int) -> str:
    return format(serial, "x")


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
