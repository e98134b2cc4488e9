"""`phr dev run` serves the authentication-app stand-in only when it is the chosen upstream."""

from __future__ import annotations

from pathlib import Path

from launcher.dev_cli import _dev_extras
from phr_core.config import load_settings


def test_the_stand_in_runs_only_with_app_and_a_loopback_issuer(tmp_path: Path) -> None:
    base = {"PHR_VAR_DIR": str(tmp_path)}
    assert [t.name for t in _dev_extras(load_settings(base))] == ["authority"]
    app = {**base, "PHR_CARD_VERIFIER": "app", "PHR_CARD_APP_ISSUER": "http://127.0.0.1:8020"}
    extras = {t.name: t for t in _dev_extras(load_settings(app))}
    assert extras["authapp"].port == 8020
    assert extras["authapp"].app_factory == "idp.authapp_sim.app:create_app()"
    remote = {**app, "PHR_CARD_APP_ISSUER": "https://sb-auth-and-sign.go.jp/api/realms/main"}
    assert "authapp" not in {t.name for t in _dev_extras(load_settings(remote))}
