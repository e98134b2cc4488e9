"""`phr card …`: the virtual My Number card and the development card authority.

    phr card init                      create the development authority (root + issuing CA)
    phr card authority                 serve it (OCSP, CRL, renewal links) on PHR_CARD_AUTHORITY_URL
    phr card issue --name … --out card.json
    phr card show --card card.json
    phr card revoke --card card.json
    phr card renew --card card.json
    phr card sign CODE-OR-URL --card card.json   (the stand-in for the phone app reading the card)
    phr card sign CODE-OR-URL --reader           (the card itself, on a PC/SC reader)
    phr card readers                             (the readers, and the card on each)

Nothing here prints a PIN, a key, a certificate serial number or (except `show`, to the card
holder) personal data.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote, urlsplit

import click
from werkzeug.serving import run_simple

from idp.authority_sim.app import create_app
from idp.authority_sim.ca import Authority, init_authority
from idp.card.errors import CardError
from idp.card.profile import AUTH, SEXES, SIGN, BasicAttributes, signed_data
from idp.card.reader.errors import ReaderError
from idp.card.reader.session import ReaderCard, survey
from idp.card.vcard import MAX_TRIES, PinFormatError, VirtualCard, check_pin_format
from idp.card.verify import read_attributes
from phr_core.config import ConfigError, Settings, load_settings

CARD_OPTION = click.option(
    "--card",
    "card_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("card.json"),
    show_default=True,
    help="The virtual card file.",
)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _authority() -> Authority:
    try:
        return init_authority(_settings())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _load_card(path: Path) -> VirtualCard:
    try:
        return VirtualCard.load(path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _lang() -> str:
    lang = os.environ.get("LC_ALL") or os.environ.get("LC_MESSAGES") or os.environ.get("LANG", "")
    return "ja" if lang.startswith("ja") else "en"


def _new_pin(kind: str, given: str | None) -> str:
    label = "user-authentication PIN (4 digits)" if kind == AUTH else "signature PIN (6–16 A-Z/0-9)"
    while True:
        pin = given or click.prompt(f"New {label}", hide_input=True, confirmation_prompt=True)
        try:
            return check_pin_format(kind, pin)
        except PinFormatError as exc:
            if given:
                raise click.BadParameter(str(exc)) from None
            click.echo(f"{exc}; try again.", err=True)


@click.group(name="card", context_settings={"help_option_names": ["-h", "--help"]})
def card() -> None:
    """Virtual My Number card and the development card authority (never in production).

    \b
    phr card issue --name "山田 花子" --birthdate 1990-04-01 --sex female \\
                   --address "福島県会津若松市東栄町3-46" --out card.json
    phr card sign ABCD-EFGH --card card.json     (the code shown on the sign-in page)
    """


@card.command("init")
def init_cmd() -> None:
    """Create the development card authority (root and issuing CA) if it does not exist."""
    authority = _authority()
    click.echo(f"card authority ready in {authority.folder}; trust root {authority.root_pem_path}")


@card.command("authority")
@click.option("--port", type=int, default=None, help="Default: the port of PHR_CARD_AUTHORITY_URL.")
def authority_cmd(port: int | None) -> None:
    """Serve the development authority (OCSP, CRL, CA certificates, renewal links)."""
    s = _settings()
    authority = _authority()
    port = port or urlsplit(authority.base_url).port or 8005
    run_simple(s.host, port, create_app(s, authority), threaded=True)


@card.command("issue")
@click.option("--name", required=True, help="Full name as on the residence record.")
@click.option("--birthdate", required=True, help="YYYY-MM-DD.")
@click.option("--sex", required=True, type=click.Choice(SEXES))
@click.option("--address", required=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("card.json"),
    show_default=True,
)
@click.option("--auth-pin", help="4 digits (asked when omitted).")
@click.option("--sign-pin", help="6–16 upper-case letters and digits (asked when omitted).")
@click.option("--force", is_flag=True, help="Overwrite an existing card file.")
def issue_cmd(
    name: str,
    birthdate: str,
    sex: str,
    address: str,
    out: Path,
    auth_pin: str | None,
    sign_pin: str | None,
    force: bool,
) -> None:
    """Issue a new virtual card: both key pairs, both certificates, PIN-protected keys."""
    try:
        date.fromisoformat(birthdate)
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--birthdate") from None
    if out.exists() and not force:
        raise click.ClickException(f"{out} exists; give --force to replace it")
    apin, spin = _new_pin(AUTH, auth_pin), _new_pin(SIGN, sign_pin)
    attrs = BasicAttributes(
        name=name.strip(), birthdate=birthdate, sex=sex, address=address.strip()
    )
    issued = _authority().issue_card(attrs)
    VirtualCard.create(
        out, (issued.auth_cert, issued.auth_key), (issued.sign_cert, issued.sign_key), apin, spin
    )
    click.echo(
        f"card written to {out}; valid until {issued.auth_cert.not_valid_after_utc.date()} "
        f"(PIN tries: authentication {MAX_TRIES[AUTH]}, signature {MAX_TRIES[SIGN]})"
    )


@card.command("show")
@CARD_OPTION
def show_cmd(card_path: Path) -> None:
    """What is on the card: certificate types, validity and PIN tries left."""
    vc = _load_card(card_path)
    for kind, label in ((AUTH, "user authentication"), (SIGN, "signature")):
        cert = vc.certificate(kind)
        click.echo(
            f"{label:<20} valid {cert.not_valid_before_utc.date()} – "
            f"{cert.not_valid_after_utc.date()}, PIN tries left {vc.tries_left(kind)}"
            + (" (LOCKED)" if vc.tries_left(kind) <= 0 else "")
        )


@card.command("revoke")
@CARD_OPTION
@click.option("--which", type=click.Choice(["both", AUTH, SIGN]), default="both", show_default=True)
@click.option(
    "--reason",
    type=click.Choice(
        ["unspecified", "key_compromise", "affiliation_changed", "cessation_of_operation"]
    ),
    default="key_compromise",
    show_default=True,
    help="CRL reason code (a lost card: key_compromise).",
)
def revoke_cmd(card_path: Path, which: str, reason: str) -> None:
    """Revoke the card's certificates at the authority (as when a card is reported lost)."""
    vc = _load_card(card_path)
    authority = _authority()
    kinds = (AUTH, SIGN) if which == "both" else (which,)
    for kind in kinds:
        authority.revoke(vc.certificate(kind), reason)
    click.echo(f"revoked ({reason}): " + ", ".join(kinds))


@card.command("move")
@CARD_OPTION
@click.option("--address", required=True, help="The new address.")
@click.option("--sign-pin", help="New signature PIN (asked when omitted).")
def move_cmd(card_path: Path, address: str, sign_pin: str | None) -> None:
    """Record a move: as JPKI does, the signature certificate is revoked (affiliation changed)
    and a new one with the new address is written to the card; the user-authentication
    certificate stays valid. Sign in once with `phr card sign --update-attributes` to give the
    IdP the new address."""
    vc = _load_card(card_path)
    attrs = read_attributes(vc.certificate(SIGN))
    if attrs is None:
        raise click.ClickException("the card's signature certificate carries no attributes")
    spin = _new_pin(SIGN, sign_pin)
    cert, key = _authority().reissue_signature(
        vc.certificate(AUTH), vc.certificate(SIGN), replace(attrs, address=address.strip())
    )
    vc.replace_signature_key((cert, key), spin)
    click.echo(
        "new signature certificate written; the user-authentication certificate is unchanged"
    )


@card.command("renew")
@CARD_OPTION
@click.option("--auth-pin", help="New 4-digit PIN (asked when omitted).")
@click.option("--sign-pin", help="New signature PIN (asked when omitted).")
def renew_cmd(card_path: Path, auth_pin: str | None, sign_pin: str | None) -> None:
    """Renew the card: new key pairs and certificates for the same person; the old certificates
    are revoked as `superseded` and the authority publishes signed old→new links."""
    vc = _load_card(card_path)
    attrs = read_attributes(vc.certificate(SIGN))
    if attrs is None:
        raise click.ClickException("the card's signature certificate carries no attributes")
    apin, spin = _new_pin(AUTH, auth_pin), _new_pin(SIGN, sign_pin)
    issued = _authority().renew(vc.certificate(AUTH), vc.certificate(SIGN), attrs)
    vc.load_keys(
        (issued.auth_cert, issued.auth_key), (issued.sign_cert, issued.sign_key), apin, spin
    )
    click.echo(f"card renewed; valid until {issued.auth_cert.not_valid_after_utc.date()}")


# --- sign: the card reader ------------------------------------------------------------------


class _Http(Exception):
    def __init__(self, status: int, body: dict) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def _request(url: str, payload: dict | None = None) -> dict:
    data = None if payload is None else json.dumps(payload).encode()
    # S310: a URL the user gave this CLI (the QR code's URL, --idp or PHR_ISSUER)
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")  # noqa: S310 - see above
    req.add_header("Accept", "application/json")
    req.add_header("Accept-Language", _lang())
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the Request above
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            body = json.load(exc)
        except ValueError:
            body = {"error": "http_error", "error_description": f"HTTP {exc.code}"}
        raise _Http(exc.code, body) from None
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot reach {urlsplit(url).netloc} ({exc})") from None


class _PinSource:
    """PINs from the terminal (hidden) or, with --pin-stdin, one per line from standard input."""

    def __init__(self, from_stdin: bool) -> None:
        self.from_stdin = from_stdin

    def get(self, kind: str) -> str:
        label = "User-authentication PIN (4 digits)" if kind == AUTH else "Signature PIN"
        if not self.from_stdin:
            return click.prompt(label, hide_input=True)
        line = sys.stdin.readline()
        if not line:
            raise click.ClickException("no more PINs on standard input")
        return line.strip()


def _sign_with_pin(vc: VirtualCard, kind: str, data: bytes, pins: _PinSource) -> bytes:
    while True:
        try:
            return vc.sign(kind, pins.get(kind), data)
        except CardError as exc:
            click.echo(exc.message(_lang()), err=True)
            if exc.code == "card_locked":
                raise SystemExit(3) from None


class _VirtualSource:
    """The virtual card file, with the same two calls as the reader mode's ReaderCard."""

    def __init__(self, vc: VirtualCard) -> None:
        self.vc = vc

    def certificate_der(self, kind: str, pins: _PinSource) -> bytes:
        return self.vc.certificate_der(kind)

    def sign(self, kind: str, data: bytes, pins: _PinSource) -> bytes:
        return _sign_with_pin(self.vc, kind, data, pins)

    def close(self) -> None:
        pass


def _reader_failed(exc: ReaderError) -> NoReturn:
    # The detail (a status word or PC/SC code, never a PIN) is for the IT staff who get a call.
    click.echo(exc.message(_lang()) + (f" [{exc.detail}]" if exc.detail else ""), err=True)
    raise SystemExit(3 if exc.code == "pin_locked" else 1)


@card.command("readers")
def readers_cmd() -> None:
    """The PC/SC card readers, and the card on each (a My Number card shows how many
    user-authentication PIN tries are left; reading it spends none)."""
    try:
        reports = survey()
    except ReaderError as exc:
        _reader_failed(exc)
    ja = _lang() == "ja"
    for r in reports:
        if r.card == "none":
            state = "カードなし" if ja else "no card"
        elif r.card == "my_number_card":
            state = (
                f"マイナンバーカード（利用者証明用暗証番号 残り{r.auth_tries_left}回）"
                if ja
                else f"My Number card (user-authentication PIN: {r.auth_tries_left} tries left)"
            )
        else:
            state = ReaderError(r.card).message(_lang())
        click.echo(f"{r.name}: {state}")


@card.command("sign")
@click.argument("ref", metavar="CODE-OR-URL")
@CARD_OPTION
@click.option(
    "--idp", "idp_url", help="The IdP's URL when giving a short code (default: PHR_ISSUER)."
)
@click.option("--pin-stdin", is_flag=True, help="Read PINs from standard input, one per line.")
@click.option(
    "--reader", "use_reader", is_flag=True, help="Use the card on a PC/SC reader, not --card."
)
@click.option("--reader-name", help="Which reader (default: the first with a card).")
@click.option(
    "--update-attributes",
    is_flag=True,
    help="Also sign with the signature certificate, so the IdP records your current "
    "name and address (after a move).",
)
def sign_cmd(
    ref: str,
    card_path: Path,
    idp_url: str | None,
    pin_stdin: bool,
    update_attributes: bool,
    use_reader: bool,
    reader_name: str | None,
) -> None:
    """Sign in with the card: fetch the card session (the QR code's URL or the short code on the
    sign-in page), ask the PIN, sign its challenge and send certificate and signature. The first
    time, the card is enrolled: the signature PIN is asked as well."""
    try:
        vc: _VirtualSource | ReaderCard = (
            ReaderCard(reader_name, _lang(), lambda m: click.echo(m, err=True))
            if use_reader
            else _VirtualSource(_load_card(card_path))
        )
        try:
            _sign_with(vc, ref, idp_url, pin_stdin, update_attributes)
        finally:
            vc.close()
    except ReaderError as exc:
        _reader_failed(exc)


def _sign_with(
    vc: _VirtualSource | ReaderCard,
    ref: str,
    idp_url: str | None,
    pin_stdin: bool,
    update_attributes: bool,
) -> None:
    if ref.startswith(("http://", "https://")):
        url = ref.rstrip("/")
        base = url.split("/card/sessions/", 1)[0]
    else:
        base = (idp_url or _settings().issuer).rstrip("/")
        url = f"{base}/card/sessions/{quote(ref.strip(), safe='')}"
    try:
        info = _request(url)
    except _Http as exc:
        raise click.ClickException(str(exc.body.get("error_description", exc.status))) from None
    origin, session_id = info.get("origin", ""), info.get("session_id", "")
    # Only sign for the IdP we are talking to: the origin is inside the signed bytes.
    if origin.rstrip("/") != base:
        raise click.ClickException(
            f"the session claims origin {origin!r} but was fetched from {base!r}; not signing"
        )
    click.echo(f"Signing in to {origin}")
    data = signed_data(origin, session_id, info["challenge"])
    pins = _PinSource(pin_stdin)
    certificate = vc.certificate_der(AUTH, pins)
    if isinstance(vc, ReaderCard):
        click.echo(
            f"カードを読み取りました（{vc.reader}）"
            if _lang() == "ja"
            else f"Card read ({vc.reader})",
            err=True,
        )
    payload = {
        "certificate": base64.b64encode(certificate).decode(),
        "signature": base64.b64encode(vc.sign(AUTH, data, pins)).decode(),
    }
    post_url = f"{base}/card/sessions/{quote(session_id, safe='')}/response"

    def add_signature_certificate() -> None:
        payload["signature_certificate"] = base64.b64encode(vc.certificate_der(SIGN, pins)).decode()
        payload["signature_signature"] = base64.b64encode(vc.sign(SIGN, data, pins)).decode()

    if update_attributes:
        add_signature_certificate()
    try:
        _request(post_url, payload)
    except _Http as exc:
        if exc.body.get("error") != "enrollment_required" or update_attributes:
            raise click.ClickException(str(exc.body.get("error_description", exc.status))) from None
        click.echo(str(exc.body.get("error_description")))
        add_signature_certificate()
        try:
            _request(post_url, payload)
        except _Http as exc2:
            raise click.ClickException(
                str(exc2.body.get("error_description", exc2.status))
            ) from None
    click.echo(
        "確認できました。ログイン画面に戻ってください。"
        if _lang() == "ja"
        else "Verified: return to the sign-in page."
    )
