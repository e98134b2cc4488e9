"""Counter staff: their own sign-in (scrypt, lock-out, own cookie, CSRF), finding an enrolled
person by the card's name and birth date, issuing one-time codes, the audit, and the CLI."""

from __future__ import annotations

import logging
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import select, update

from idp.card.profile import BasicAttributes
from idp.passkey import staff
from idp.passkey.models import EnrollmentCode, PasskeyAudit, Staff, StaffSession
from launcher.cli import main
from tests.idp.card.conftest import ALICE, BOB
from tests.idp.passkey.conftest import (
    STAFF_LOGIN,
    STAFF_PASSWORD,
    PasskeyIdp,
    form_csrf,
    issue_code,
    shown_code,
    staff_sign_in,
)


def audits(pk: PasskeyIdp, event: str) -> list[tuple[str, str | None, int | None]]:
    with pk.db.session() as s:
        rows = s.scalars(
            select(PasskeyAudit).where(PasskeyAudit.event == event).order_by(PasskeyAudit.id)
        )
        return [(r.outcome, r.code, r.staff_id) for r in rows]


def test_password_hash_is_scrypt_and_checks() -> None:
    stored = staff.hash_password("a long staff password")
    assert stored.startswith("scrypt$16384$8$1$") and "a long staff password" not in stored
    assert staff.check_password("a long staff password", stored)
    assert not staff.check_password("a long staff passwore", stored)
    assert not staff.check_password("x", "not-a-hash")
    assert staff.hash_password("same") != staff.hash_password("same")  # salted


def test_staff_sign_in_sets_its_own_cookie(pk: PasskeyIdp) -> None:
    staff_id = pk.add_staff()
    client = pk.app.test_client()
    assert client.get("/staff/").headers["Location"].startswith("/staff/login")
    resp = staff_sign_in(client)
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/staff/")
    cookie = next(c for c in resp.headers.getlist("Set-Cookie") if c.startswith("phr_idp_staff="))
    assert "Path=/staff" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # Citizens' session cookie is not what signs staff in.
    assert not any(c.startswith("phr_idp_session=") for c in resp.headers.getlist("Set-Cookie"))
    page = client.get("/staff/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "パスキー登録コードの発行" in html and STAFF_LOGIN in html
    assert page.headers["Cache-Control"] == "no-store"
    assert audits(pk, "staff_sign_in") == [("success", None, staff_id)]


def test_wrong_password_then_lock_out_then_unlock(pk: PasskeyIdp) -> None:
    staff_id = pk.add_staff()
    client = pk.app.test_client()
    for _ in range(staff.MAX_FAILED_LOGINS - 1):
        resp = staff_sign_in(client, password="wrong password!")
        assert resp.status_code == 401
        assert "ログイン名またはパスワードが違います。" in resp.get_data(as_text=True)
    resp = staff_sign_in(client, password="wrong password!")
    assert resp.status_code == 423
    # Locked: even the right password is refused until the lock ends or an admin unlocks.
    resp = staff_sign_in(client)
    assert resp.status_code == 423
    assert "ロックされています" in resp.get_data(as_text=True)
    codes = [c for _, c, _ in audits(pk, "staff_sign_in")]
    assert codes == ["bad_credentials"] * 4 + ["staff_locked", "staff_locked"]
    with pk.db.session() as s:
        assert staff.unlock(s, STAFF_LOGIN)
    assert staff_sign_in(client).status_code == 302
    assert audits(pk, "staff_unlock") == [("success", None, staff_id)]


def test_lock_ends_by_itself(pk: PasskeyIdp) -> None:
    pk.add_staff()
    client = pk.app.test_client()
    for _ in range(staff.MAX_FAILED_LOGINS):
        staff_sign_in(client, password="wrong password!")
    assert staff_sign_in(client).status_code == 423
    with pk.db.session() as s:
        s.execute(update(Staff).values(locked_until=staff.now_utc() - timedelta(seconds=1)))
    assert staff_sign_in(client).status_code == 302


def test_unknown_login_gets_the_same_answer_as_a_wrong_password(pk: PasskeyIdp) -> None:
    pk.add_staff()
    client = pk.app.test_client()
    unknown = staff_sign_in(client, login="nobody")
    wrong = staff_sign_in(client, password="wrong password!")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.get_data(as_text=True) == wrong.get_data(as_text=True).replace(
        form_csrf(wrong.get_data(as_text=True)), form_csrf(unknown.get_data(as_text=True))
    )
    assert [c for _, c, _ in audits(pk, "staff_sign_in")] == ["bad_credentials"] * 2


def test_staff_forms_need_their_csrf_token(pk: PasskeyIdp) -> None:
    pk.add_staff()
    client = pk.app.test_client()
    client.get("/staff/login")
    resp = client.post(
        "/staff/login", data={"csrf": "forged", "login": STAFF_LOGIN, "password": STAFF_PASSWORD}
    )
    assert resp.status_code == 400
    assert "フォームの有効期限が切れました" in resp.get_data(as_text=True)
    assert staff_sign_in(client).status_code == 302
    resp = client.post(
        "/staff/codes",
        data={
            "csrf": "forged",
            "name": ALICE.name,
            "birthdate": ALICE.birthdate,
            "confirmed": "yes",
        },
    )
    assert resp.status_code == 400
    assert audits(pk, "code_issue")[-1][1] == "csrf"


def test_a_citizen_session_is_no_staff_session(pk: PasskeyIdp) -> None:
    client = pk.app.test_client()
    with client.session_transaction() as sess:
        sess["login"] = "anything"
        sess["csrf"] = "token"
    assert client.get("/staff/").status_code == 302
    resp = client.post("/staff/codes", data={"csrf": "token", "name": "x", "birthdate": "x"})
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/staff/login")
    assert audits(pk, "code_issue") == [("failure", "staff_signed_out", None)]


def test_issue_a_code_for_a_card_enrolled_person(pk: PasskeyIdp, caplog) -> None:
    person_id = pk.enroll_with_card(ALICE)
    staff_id = pk.add_staff()
    client = pk.app.test_client()
    staff_sign_in(client)
    caplog.set_level(logging.INFO)
    # The name as typed at the counter: full-width space, another spacing.
    typed = BasicAttributes("会津　 花子", ALICE.birthdate, "", "")
    resp = issue_code(client, typed)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    html = resp.get_data(as_text=True)
    code = shown_code(html)
    assert len(code) == 11 and code[5] == "-"
    assert '<div class="code-qr"><svg' in html
    assert "/passkey/enroll" in html and "15" in html
    assert resp.headers["Cache-Control"] == "no-store"
    with pk.db.session() as s:
        row = s.scalar(select(EnrollmentCode))
        assert row is not None and row.person_id == person_id and row.staff_id == staff_id
        assert code.replace("-", "") not in row.code_key and len(row.code_key) == 64
    assert audits(pk, "code_issued") == [("success", None, staff_id)]
    logged = caplog.text
    assert code not in logged and code.replace("-", "") not in logged
    assert ALICE.name not in logged and person_id not in logged


def test_a_new_code_withdraws_the_earlier_one(pk: PasskeyIdp) -> None:
    pk.enroll_with_card(ALICE)
    pk.add_staff()
    client = pk.app.test_client()
    staff_sign_in(client)
    issue_code(client)
    issue_code(client)
    with pk.db.session() as s:
        rows = s.scalars(select(EnrollmentCode).order_by(EnrollmentCode.created_at)).all()
    assert len(rows) == 2 and rows[0].used_at is not None and rows[1].used_at is None


def test_counter_refusals(pk: PasskeyIdp) -> None:
    pk.enroll_with_card(ALICE)
    staff_id = pk.add_staff()
    client = pk.app.test_client()
    staff_sign_in(client)
    bad_date = issue_code(client, BasicAttributes(ALICE.name, "1990/04/01", "", ""))
    assert bad_date.status_code == 400 and "YYYY-MM-DD" in bad_date.get_data(as_text=True)
    unconfirmed = issue_code(client, confirmed=False)
    assert unconfirmed.status_code == 400
    assert "照合したことを確認してください" in unconfirmed.get_data(as_text=True)
    unknown = issue_code(client, BOB)
    assert unknown.status_code == 404
    assert "マイナンバーカードで一度サインイン" in unknown.get_data(as_text=True)
    assert [c for _, c, _ in audits(pk, "code_issue")] == [
        "bad_input",
        "not_confirmed",
        "person_not_found",
    ]
    assert all(sid == staff_id for _, _, sid in audits(pk, "code_issue"))
    with pk.db.session() as s:
        assert s.scalar(select(EnrollmentCode)) is None


def test_namesakes_are_told_apart_by_the_address(pk: PasskeyIdp) -> None:
    first = pk.enroll_with_card(ALICE, name="a")
    twin = BasicAttributes(ALICE.name, ALICE.birthdate, "female", "福島県喜多方市御清水東7244-2")
    second = pk.enroll_with_card(twin, name="b")
    assert first != second
    pk.add_staff()
    client = pk.app.test_client()
    staff_sign_in(client)
    resp = issue_code(client)
    assert resp.status_code == 409 and "住所も入力" in resp.get_data(as_text=True)
    resp = issue_code(client, address="福島県喜多方市御清水東7244-2")
    assert resp.status_code == 200
    with pk.db.session() as s:
        assert s.scalar(select(EnrollmentCode.person_id)) == second
    resp = issue_code(client, address="東京都千代田区永田町1-1")
    assert resp.status_code == 404


def test_staff_pages_in_english(pk: PasskeyIdp) -> None:
    pk.add_staff()
    client = pk.app.test_client()
    page = client.get("/staff/login?lang=en").get_data(as_text=True)
    assert "Counter staff sign-in" in page and 'lang="en"' in page
    resp = client.post(
        "/staff/login?lang=en",
        data={"csrf": form_csrf(page), "login": STAFF_LOGIN, "password": "wrong password!"},
    )
    assert "Wrong login name or password." in resp.get_data(as_text=True)


def test_sign_out_and_disable_end_staff_sessions(pk: PasskeyIdp) -> None:
    pk.add_staff()
    client = pk.app.test_client()
    staff_sign_in(client)
    page = client.get("/staff/").get_data(as_text=True)
    client.post("/staff/logout", data={"csrf": form_csrf(page)})
    assert client.get("/staff/").status_code == 302
    staff_sign_in(client)
    assert client.get("/staff/").status_code == 200
    with pk.db.session() as s:
        assert staff.set_disabled(s, STAFF_LOGIN, True)
    assert client.get("/staff/").status_code == 302
    assert staff_sign_in(client).status_code == 401
    with pk.db.session() as s:
        ended = s.scalars(select(StaffSession.ended_at)).all()
    assert len(ended) == 2 and sum(e is not None for e in ended) == 1


def test_staff_cli(pk: PasskeyIdp) -> None:
    env = {**pk.env.settings.environ, "LANG": "C.UTF-8"}
    runner = CliRunner()
    short = runner.invoke(main, ["idp", "staff", "add", "clerk"], input="short\nshort\n", env=env)
    assert short.exit_code == 1 and "at least 12" in short.output
    pw = "a long enough password"
    made = runner.invoke(main, ["idp", "staff", "add", "clerk"], input=f"{pw}\n{pw}\n", env=env)
    assert made.exit_code == 0, made.output
    again = runner.invoke(main, ["idp", "staff", "add", "clerk"], input=f"{pw}\n{pw}\n", env=env)
    assert again.exit_code == 1 and "already exists" in again.output
    with pk.db.session() as s:
        row = s.scalar(select(Staff).where(Staff.login == "clerk"))
        assert row is not None and staff.check_password(pw, row.password_hash)
        assert pw not in row.password_hash
    assert staff_sign_in(pk.app.test_client(), "clerk", pw).status_code == 302
    listed = runner.invoke(main, ["idp", "staff", "list"], env=env)
    assert "clerk" in listed.output and "active" in listed.output
    assert runner.invoke(main, ["idp", "staff", "disable", "clerk"], env=env).exit_code == 0
    assert "disabled" in runner.invoke(main, ["idp", "staff", "list"], env=env).output
    assert runner.invoke(main, ["idp", "staff", "enable", "clerk"], env=env).exit_code == 0
    assert runner.invoke(main, ["idp", "staff", "unlock", "clerk"], env=env).exit_code == 0
    missing = runner.invoke(main, ["idp", "staff", "unlock", "nobody"], env=env)
    assert missing.exit_code == 1 and "no staff account" in missing.output


def test_reindex_finds_people_enrolled_before_the_index(pk: PasskeyIdp) -> None:
    from idp.card.models import PersonLookup

    person_id = pk.enroll_with_card(ALICE)
    with pk.db.session() as s:
        s.query(PersonLookup).delete()
    pk.add_staff()
    client = pk.app.test_client()
    staff_sign_in(client)
    assert issue_code(client).status_code == 404
    env = {**pk.env.settings.environ, "LANG": "C.UTF-8"}
    out = CliRunner().invoke(main, ["idp", "staff", "reindex"], env=env)
    assert out.exit_code == 0 and "indexed 1" in out.output, out.output
    assert issue_code(client).status_code == 200
    with pk.db.session() as s:
        assert s.scalar(select(EnrollmentCode.person_id)) == person_id
