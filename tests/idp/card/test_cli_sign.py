"""`phr card …` driving the card-session endpoints of a live IdP server over real HTTP (no
browser): issue → enroll → sign in → wrong PIN → renew → same person → revoked → lockout."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from click.testing import CliRunner, Result
from flask import Flask
from werkzeug.serving import make_server

from idp.card.sessions import create_card_session, display_code, session_url, take_verified
from idp.card.views import services
from launcher.cli import main
from tests.idp.card.conftest import CardIdp


@contextmanager
def serve_on_issuer_port(app: Flask, port: int) -> Iterator[None]:
    """Serve on the issuer's own port: the card reader checks that the session's origin is
    the server it talks to."""
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(5)


def run(idp: CardIdp, args: list[str], pins: str = "") -> Result:
    env = {**idp.settings.environ, "PHR_CARD_AUTHORITY_URL": idp.env.url, "LANG": "C.UTF-8"}
    return CliRunner().invoke(main, ["card", *args], input=pins, env=env)


def new_session(idp: CardIdp):  # type: ignore[no-untyped-def]
    with idp.db.session() as s:
        return create_card_session(s, "login")


def taken(idp: CardIdp, session_id: str):  # type: ignore[no-untyped-def]
    with idp.db.session() as s:
        return take_verified(s, session_id)


def test_card_reader_cli_against_live_server(card_idp: CardIdp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    card = str(tmp_path / "hanako.json")
    issued = run(
        card_idp,
        [
            "issue",
            "--name",
            "会津 花子",
            "--birthdate",
            "1990-04-01",
            "--sex",
            "female",
            "--address",
            "福島県会津若松市東栄町3-46",
            "--out",
            card,
            "--auth-pin",
            "1234",
            "--sign-pin",
            "ABC123",
        ],
    )
    assert issued.exit_code == 0, issued.output
    assert "1234" not in issued.output and "ABC123" not in issued.output

    with serve_on_issuer_port(card_idp.app, card_idp.settings.ports["idp"]):
        # first use: enrollment, by the short code as typed from the screen
        s1 = new_session(card_idp)
        out = run(
            card_idp, ["sign", display_code(s1), "--card", card, "--pin-stdin"], "1234\nABC123\n"
        )
        assert out.exit_code == 0, out.output
        assert "Verified" in out.output
        first = taken(card_idp, s1.id)
        assert first is not None and first.enrolled

        # later: authentication certificate only, by the QR code's URL; one wrong PIN first
        s2 = new_session(card_idp)
        url = session_url(card_idp.settings.issuer, s2)
        out = run(card_idp, ["sign", url, "--card", card, "--pin-stdin"], "0000\n1234\n")
        assert out.exit_code == 0, out.output
        assert "Wrong PIN. (2 tries left)" in out.output
        second = taken(card_idp, s2.id)
        assert second is not None and second.person_id == first.person_id

        # renewal: new certificates, same person
        renewed = run(
            card_idp, ["renew", "--card", card, "--auth-pin", "1234", "--sign-pin", "ABC123"]
        )
        assert renewed.exit_code == 0, renewed.output
        s3 = new_session(card_idp)
        out = run(
            card_idp, ["sign", s3.short_code, "--card", card, "--pin-stdin"], "1234\nABC123\n"
        )
        assert out.exit_code == 0, out.output
        third = taken(card_idp, s3.id)
        assert third is not None and third.person_id == first.person_id and not third.enrolled

        # revoked (reported lost): refused with its message
        assert run(card_idp, ["revoke", "--card", card]).exit_code == 0
        # OCSP "good" answers are reused for up to a minute; let that minute pass
        with card_idp.app.app_context():
            services().verifier.revocation.clear()
        s4 = new_session(card_idp)
        out = run(card_idp, ["sign", s4.short_code, "--card", card, "--pin-stdin"], "1234\n")
        assert out.exit_code == 1
        assert "revoked" in out.output
        assert taken(card_idp, s4.id) is None

        # three wrong PINs lock the authentication key; nothing was sent
        s5 = new_session(card_idp)
        out = run(
            card_idp, ["sign", s5.short_code, "--card", card, "--pin-stdin"], "0000\n0001\n0002\n"
        )
        assert out.exit_code == 3 and "locked" in out.output
        shown = run(card_idp, ["show", "--card", card])
        assert "LOCKED" in shown.output
        status = card_idp.app.test_client().get(f"/card/sessions/{s5.id}/status").get_json()
        assert status["status"] == "pending"


def test_cli_refuses_a_session_of_another_origin(card_idp: CardIdp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A session served from one address but naming another origin is not signed."""
    card_idp.env.card(name="c")
    with serve_on_issuer_port(card_idp.app, card_idp.settings.ports["idp"]):
        s1 = new_session(card_idp)
        url = session_url(card_idp.settings.issuer, s1).replace("127.0.0.1", "localhost")
        out = run(
            card_idp, ["sign", url, "--card", str(tmp_path / "c.json"), "--pin-stdin"], "1234\n"
        )
    assert out.exit_code == 1 and "not signing" in out.output


def test_move_keeps_the_person_and_updates_the_address(card_idp: CardIdp) -> None:
    from idp.card.services import read_attributes

    card_idp.env.card(name="mover")
    card = str(card_idp.env.tmp / "mover.json")
    new_address = "福島県会津若松市追手町5-10"
    with serve_on_issuer_port(card_idp.app, card_idp.settings.ports["idp"]):
        s1 = new_session(card_idp)
        assert (
            run(
                card_idp, ["sign", s1.short_code, "--card", card, "--pin-stdin"], "1234\nABC123\n"
            ).exit_code
            == 0
        )
        first = taken(card_idp, s1.id)
        moved = run(
            card_idp, ["move", "--card", card, "--address", new_address, "--sign-pin", "XYZ789"]
        )
        assert moved.exit_code == 0, moved.output
        # the authentication certificate is unchanged: sign-in as before
        s2 = new_session(card_idp)
        assert (
            run(
                card_idp, ["sign", s2.short_code, "--card", card, "--pin-stdin"], "1234\n"
            ).exit_code
            == 0
        )
        assert taken(card_idp, s2.id).person_id == first.person_id
        # with the new signature certificate, the IdP learns the new address
        s3 = new_session(card_idp)
        out = run(
            card_idp,
            ["sign", s3.short_code, "--card", card, "--pin-stdin", "--update-attributes"],
            "1234\nXYZ789\n",
        )
        assert out.exit_code == 0, out.output
        assert taken(card_idp, s3.id).person_id == first.person_id
    with card_idp.db.session() as s, card_idp.app.app_context():
        attrs = read_attributes(s, services(), first.person_id)
    assert attrs is not None and attrs.address == new_address and attrs.name == "会津 花子"


def test_concurrent_responses_to_one_challenge_verify_once(card_idp: CardIdp) -> None:
    """Eight readers post the same valid response at once: exactly one is verified."""
    import base64
    import json
    import urllib.error
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from idp.card.profile import AUTH, signed_data

    card = card_idp.env.card(name="racer")
    base = card_idp.settings.issuer
    with serve_on_issuer_port(card_idp.app, card_idp.settings.ports["idp"]):
        s0 = new_session(card_idp)
        enrolled = run(
            card_idp,
            ["sign", s0.short_code, "--card", str(card.path), "--pin-stdin"],
            "1234\nABC123\n",
        )
        assert enrolled.exit_code == 0, enrolled.output
        session = new_session(card_idp)
        data = signed_data(base, session.id, session.challenge)
        body = json.dumps(
            {
                "certificate": base64.b64encode(card.certificate_der(AUTH)).decode(),
                "signature": base64.b64encode(card.sign(AUTH, "1234", data)).decode(),
            }
        ).encode()

        def post(_: int) -> int:
            req = urllib.request.Request(  # noqa: S310
                f"{base}/card/sessions/{session.id}/response",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
                    return resp.status
            except urllib.error.HTTPError as exc:
                assert json.load(exc)["error"] == "challenge_used"
                return exc.code

        with ThreadPoolExecutor(8) as pool:
            statuses = sorted(pool.map(post, range(8)))
    assert statuses == [200] + [409] * 7
    assert taken(card_idp, session.id) is not None
