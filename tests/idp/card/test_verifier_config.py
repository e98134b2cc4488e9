"""PHR_CARD_VERIFIER: the virtual card's stand-in in development only, JPKI with its own trust
file and OCSP responder, anything else named; and a JPKI-mode IdP verifying and enrolling a card
(the stand-in authority playing J-LIS: its CAs in the trust file, its OCSP responder as the
configured one)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from idp.app import create_app
from idp.card.profile import AUTH, SIGN, signed_data
from idp.card.services import CardServices
from idp.card.sessions import create_card_session, take_verified
from idp.card.verifier_config import NoRenewalLinks, verifier_choice
from phr_core.config import VARIABLES, ConfigError, load_settings
from tests.idp.card.conftest import AUTH_PIN, SIGN_PIN, CardIdp, make_card_app
from tests.phr_core.test_config import production_env


def test_default_is_the_virtual_card_in_development(tmp_path: Path) -> None:
    choice = verifier_choice(load_settings({"PHR_VAR_DIR": str(tmp_path)}))
    assert choice.kind == "virtual" and choice.authority_url


def test_production_refuses_the_stand_in(tmp_path: Path) -> None:
    prod = load_settings({"PHR_ENV": "production", "PHR_VAR_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="development only"):
        verifier_choice(prod)


def test_unknown_verifier_and_missing_trust_file_are_named(tmp_path: Path) -> None:
    # `app` was the placeholder for an unknown verifier until issue 15 part 2 made it real.
    with pytest.raises(ConfigError, match="PHR_CARD_VERIFIER='phone'"):
        verifier_choice(load_settings({"PHR_VAR_DIR": str(tmp_path), "PHR_CARD_VERIFIER": "phone"}))
    with pytest.raises(ConfigError, match="PHR_CARD_APP_ISSUER"):
        verifier_choice(load_settings({"PHR_VAR_DIR": str(tmp_path), "PHR_CARD_VERIFIER": "app"}))
    app = {"PHR_VAR_DIR": str(tmp_path), "PHR_CARD_VERIFIER": "app"}
    with pytest.raises(ConfigError, match="PHR_CARD_APP_CLIENT_ID"):
        verifier_choice(load_settings({**app, "PHR_CARD_APP_ISSUER": "https://auth.example"}))
    jpki = {"PHR_VAR_DIR": str(tmp_path), "PHR_CARD_VERIFIER": "jpki"}
    with pytest.raises(ConfigError, match="PHR_CARD_JPKI_TRUST_ROOTS"):
        verifier_choice(load_settings(jpki))
    roots = tmp_path / "roots.pem"
    roots.write_text("")
    prod = {**jpki, "PHR_ENV": "production", "PHR_CARD_JPKI_TRUST_ROOTS": str(roots)}
    with pytest.raises(ConfigError, match="https"):
        verifier_choice(load_settings({**prod, "PHR_CARD_JPKI_OCSP_URL": "http://ocsp.example"}))
    ok = verifier_choice(load_settings({**prod, "PHR_CARD_JPKI_OCSP_URL": "https://ocsp.example"}))
    assert ok.kind == "jpki" and ok.authority_url is None


def test_the_setting_is_in_the_configuration_table() -> None:
    names = {v.name for v in VARIABLES}
    assert {"PHR_CARD_VERIFIER", "PHR_CARD_JPKI_TRUST_ROOTS", "PHR_CARD_JPKI_OCSP_URL"} <= names


def test_jpki_mode_verifies_and_enrolls_with_the_configured_roots_and_ocsp(
    card_idp: CardIdp, tmp_path: Path
) -> None:
    folder = card_idp.env.authority.folder
    roots = tmp_path / "jlis-roots.pem"
    roots.write_bytes((folder / "root.pem").read_bytes() + (folder / "issuing.pem").read_bytes())
    settings = load_settings(
        {
            **card_idp.settings.environ,
            "PHR_CARD_VERIFIER": "jpki",
            "PHR_CARD_JPKI_TRUST_ROOTS": str(roots),
            "PHR_CARD_JPKI_OCSP_URL": f"{card_idp.env.url}/ocsp",
            # the stand-in's own address is in the certificates: make it unusable, so only the
            # configured responder can answer
            "PHR_CARD_AUTHORITY_URL": "http://127.0.0.1:9",
        }
    )
    app = make_card_app(settings)
    services = CardServices.from_settings(settings)
    assert isinstance(services.links, NoRenewalLinks)
    vc = card_idp.env.card(name="jpki")
    with app.app_context(), app.extensions["phr_db"].session() as s:
        session = create_card_session(s, "login")
        s.commit()
        data = signed_data(settings.issuer, session.id, session.challenge)
    key_auth = vc.unlock(AUTH, AUTH_PIN)
    key_sign = vc.unlock(SIGN, SIGN_PIN)
    body = {
        "certificate": base64.b64encode(vc.certificate_der(AUTH)).decode(),
        "signature": base64.b64encode(
            key_auth.sign(data, padding.PKCS1v15(), hashes.SHA256())
        ).decode(),
        "signature_certificate": base64.b64encode(vc.certificate_der(SIGN)).decode(),
        "signature_signature": base64.b64encode(
            key_sign.sign(data, padding.PKCS1v15(), hashes.SHA256())
        ).decode(),
    }
    answer = app.test_client().post(f"/card/sessions/{session.id}/response", json=body)
    assert answer.status_code == 200, answer.get_json()
    with app.extensions["phr_db"].session() as s:
        signed_in = take_verified(s, session.id)
    assert signed_in is not None and signed_in.enrolled


def test_the_idp_refuses_to_start_in_production_with_the_stand_in(tmp_path: Path) -> None:
    complete = load_settings(production_env(tmp_path))  # nothing else for it to refuse
    with pytest.raises(ConfigError, match="PHR_CARD_VERIFIER=virtual"):
        create_app(complete)
