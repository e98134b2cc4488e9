"""The developer sandbox (`phr dev run`, `phr dev demo`): a demo parent with a virtual My Number
card, already enrolled at the IdP and linked to the demo city with her child, and the child's
synthetic health records (vaccinations, infant checkups) loaded into the PHR server through the
connector's own mapping. An app developer signs in with the card file and PINs written to
`$PHR_VAR_DIR/sandbox/` and sees real-looking data for the child at once (docs/apps.md).

Everything is invented. Running it again adds nothing: the card, the enrollment and the link are
made once, and the records are loaded as conditional updates (the server answers "unchanged").
"""

from __future__ import annotations

import csv
import json
import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from phr_core.config import Settings
from phr_core.db import Database
from phr_core.demo import DEMO_MUNICIPALITY

AUTH_PIN = "1234"  # the card's authentication PIN (4 digits)
SIGN_PIN = "SANDBOX1"  # the signature PIN (6–16 upper-case letters and digits)
CARD_FILE = "parent-card.json"
INFO_FILE = "README.txt"
CHILD_AGE_DAYS = 368  # just over a year: the 1-year doses (MR, varicella, boosters) are due

_NS = uuid.UUID("0b5e2d71-8a4c-5f3e-9d20-6c1a7f4b3e85")
PARENT = {
    "name": "会津 さくら",
    "birthdate": "1993-06-15",
    "sex": "female",
    "address": "福島県会津若松市東栄町3-46",
}
PARENT_RESIDENT = "1000000101"  # invented resident numbers, only inside the synthetic city
CHILD_RESIDENT = "1000000102"
FACILITY = "0711234567"


@dataclass(frozen=True)
class Sandbox:
    """Where the sandbox's files are and what a developer needs to know."""

    folder: Path
    card: Path
    child_birth: date
    person_id: str

    def summary(self) -> str:
        return (
            f"sandbox: demo parent's card {self.card} "
            f"(authentication PIN {AUTH_PIN}, signature PIN {SIGN_PIN}); "
            f"her child was born {self.child_birth.isoformat()}; see {self.folder / INFO_FILE}"
        )


def folder(settings: Settings) -> Path:
    return settings.var_dir / "sandbox"


def prepare(settings: Settings, today: date | None = None) -> Sandbox:
    """Make (once) and load the sandbox family; returns where its card is."""
    today = today or date.today()
    out = folder(settings)
    out.mkdir(parents=True, exist_ok=True)
    family_file = out / "family.json"
    if family_file.exists():
        family = json.loads(family_file.read_text(encoding="utf-8"))
    else:
        birth = today - timedelta(days=CHILD_AGE_DAYS)
        family = {"child_birth": birth.isoformat(), "person_id": str(uuid.uuid5(_NS, "parent"))}
        family_file.write_text(json.dumps(family), encoding="utf-8")
    box = Sandbox(
        out, out / CARD_FILE, date.fromisoformat(family["child_birth"]), family["person_id"]
    )
    _issue_card(settings, box)
    sub = _enroll(settings, box)
    parent_code, child_code = _codes(settings)
    _link(settings, sub, parent_code, child_code, box.child_birth)
    _load_records(settings, box, today)
    _write_info(box)
    return box


# --- the card and the IdP ---------------------------------------------------------------------


def _issue_card(settings: Settings, box: Sandbox) -> None:
    from idp.authority_sim.ca import init_authority
    from idp.card.profile import BasicAttributes
    from idp.card.vcard import VirtualCard

    if box.card.exists():
        return
    issued = init_authority(settings).issue_card(BasicAttributes(**PARENT))
    VirtualCard.create(
        box.card,
        (issued.auth_cert, issued.auth_key),
        (issued.sign_cert, issued.sign_key),
        AUTH_PIN,
        SIGN_PIN,
    )


def _enroll(settings: Settings, box: Sandbox) -> str:
    """Bind the card's two certificates to a fixed person id, as a first card sign-in would,
    so the consent service can be told about her before she ever signs in. Returns her
    PHR-sector subject."""
    from cryptography.hazmat.primitives import serialization
    from sqlalchemy import select

    from idp.card.models import CardBinding
    from idp.card.profile import AUTH, SIGN, BasicAttributes, fingerprint
    from idp.card.sessions import CardServices
    from idp.card.vcard import VirtualCard
    from idp.models import Person
    from idp.subjects import PHR_SECTOR, PairwiseSubjects

    card = VirtualCard.load(box.card)
    services = CardServices.from_settings(settings)
    db = Database(settings.database_urls["idp"])
    try:
        with db.session() as s:
            if s.get(Person, box.person_id) is None:
                s.add(Person(id=box.person_id))
                s.flush()
            for kind in (AUTH, SIGN):
                cert = card.certificate(kind)
                der = cert.public_bytes(serialization.Encoding.DER)
                key = services.binding_key(fingerprint(der))
                if s.scalar(select(CardBinding).where(CardBinding.cert_key == key)) is None:
                    s.add(
                        CardBinding(
                            person_id=box.person_id,
                            cert_type=kind,
                            cert_key=key,
                            not_after=cert.not_valid_after_utc,
                            status="active",
                            binding_method="enrollment",
                        )
                    )
            from idp.card.sessions import _store_attributes

            _store_attributes(s, services, box.person_id, BasicAttributes(**PARENT))
            return PairwiseSubjects(settings.secret("PHR_PAIRWISE_KEY")).subject(
                s, PHR_SECTOR, box.person_id
            )
    finally:
        db.dispose()


# --- the consent service ----------------------------------------------------------------------


def _codes(settings: Settings) -> tuple[str, str]:
    from connectors.pseudonym import Pseudonymizer

    pseudo = Pseudonymizer(settings.secret("PHR_CONNECTOR_PSEUDONYM_KEY"))
    return pseudo.code(PARENT_RESIDENT), pseudo.code(CHILD_RESIDENT)


def _link(settings: Settings, sub: str, parent_code: str, child_code: str, birth: date) -> None:
    """Her consent to the demo city (MCH records and vaccinations, for her child too) and the
    city's answer naming her code and her child: what the portal and `phr connector link` do."""
    from sqlalchemy import select

    from consent import linkage
    from consent.app import attribute_box
    from consent.models import PatientLink

    db = Database(settings.database_urls["consent"])
    try:
        with db.session() as s:
            city = DEMO_MUNICIPALITY.code
            if s.scalar(
                select(PatientLink).where(
                    PatientLink.subject == sub, PatientLink.municipality == city
                )
            ):
                return
            _, request = linkage.consent_to_municipality(
                s,
                attribute_box(settings),
                subject=sub,
                municipality=city,
                categories=["mch", "vaccination"],
                attributes=PARENT,
                recorded_by="phr-sandbox",
            )
            assert request is not None  # noqa: S101  (not linked yet, checked above)
            linkage.answer(
                s,
                municipality=city,
                request_id=request.id,
                code=parent_code,
                children=[linkage.Child(child_code, birth, "mother")],
                recorded_by="phr-sandbox",
            )
    finally:
        db.dispose()


# --- the PHR server ---------------------------------------------------------------------------


def _exports(box: Sandbox, today: date, out: Path) -> list[Path]:
    """The family's rows in the city's export formats, up to today: the resident register,
    the MCH records (birth, infant checkups) and the vaccination register."""
    from connectors import synth
    from connectors.register import HEADERS as REGISTER_HEADERS
    from connectors.sources.mch_csv import HEADERS as MCH_HEADERS
    from connectors.sources.vaccination_csv import HEADERS as VACC_HEADERS

    birth = box.child_birth
    rnd = random.Random(7)  # noqa: S311 (synthetic data)
    register = out / "register.csv"
    with register.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(REGISTER_HEADERS)
        w.writerow([PARENT_RESIDENT, PARENT["name"], "", PARENT["birthdate"], "2",
                    PARENT["address"], "", "", "", ""])  # fmt: skip
        w.writerow([CHILD_RESIDENT, "会津 ひなた", "", birth.isoformat(), "1",
                    PARENT["address"], "", "", "", ""])  # fmt: skip
    mch = out / "mch.csv"
    with mch.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MCH_HEADERS)

        def row(**kv: object) -> None:
            w.writerow([kv.get(h, "") for h in MCH_HEADERS])

        row(記録番号="SBX-B", 記録種別="出産", 住民番号=CHILD_RESIDENT, 母住民番号=PARENT_RESIDENT,
            実施日=birth.isoformat(), 医療機関コード=FACILITY, 妊娠週数=39, 妊娠日数=2,
            出生体重=3120, 身長="49.5", 頭囲="33.0", 胸囲="32.0", アプガー1分=9, アプガー5分=10,
            分娩方法="経膣分娩", 性別="男")  # fmt: skip
        for label, age in synth.INFANT_CHECKUPS:
            d = birth + timedelta(days=age + 5)
            if d > today:
                continue
            wt, ht, hd, ch = synth.GROWTH[age]
            row(記録番号=f"SBX-C{age}", 記録種別="乳幼児健診", 住民番号=CHILD_RESIDENT,
                母住民番号=PARENT_RESIDENT, 実施日=d.isoformat(), 医療機関コード=FACILITY,
                健診区分=label, 体重=f"{wt * 1.02:.2f}", 身長=f"{ht:.1f}", 頭囲=f"{hd:.1f}",
                胸囲=f"{ch:.1f}", 判定="健康")  # fmt: skip
    vacc = out / "vaccination.csv"
    with vacc.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(VACC_HEADERS)
        for i, (vaccine, series, dose, age) in enumerate(synth.SCHEDULE):
            d = birth + timedelta(days=age + 3)
            if d > today:
                continue
            w.writerow([f"SBX-V{i:03d}", CHILD_RESIDENT, d.isoformat(), vaccine, series, dose,
                        f"{vaccine[:2].upper()}{rnd.randint(100, 999)}",
                        synth.MANUFACTURERS[vaccine], FACILITY])  # fmt: skip
    return [register, mch, vacc]


class _InProcessSink:
    """The connector's transactions applied straight to the PHR server's database, with the
    same processing as `POST /` (validation, conditional updates, compartments)."""

    def __init__(self, settings: Settings) -> None:
        from phr_core.secrets import derive_key
        from phr_server.repository import Repository
        from phr_server.storage import Keyring

        master = settings.secret("PHR_FHIR_DATA_KEY")
        self.repo = Repository(
            Keyring(master), derive_key(master.split()[0], "phr_server/page-cursor/v1")
        )
        self.db = Database(settings.database_urls["fhir"])
        self.client_id = settings.option("PHR_CONNECTOR_CLIENT_ID")

    def send(self, entries: list) -> object:  # connectors.transport.Sink
        import time

        from connectors.transport import Outcomes, transaction
        from phr_core.tokens import AccessToken
        from phr_server import transaction as tx
        from phr_server.policy import Access, parse_scope

        scope = "system/*.cu"
        token = AccessToken(
            subject=self.client_id,
            client_id=self.client_id,
            scopes=frozenset({scope}),
            expires_at=int(time.time()) + 60,
            municipality=DEMO_MUNICIPALITY.code,
        )
        access = Access(token=token, raw_token="", scopes=[parse_scope(scope)])  # type: ignore[list-item]
        with self.db.session() as s:
            result = tx.process(s, self.repo, access, transaction(entries))
        out = Outcomes()
        for e in result.entries:
            if e.unchanged:
                out.unchanged += 1
            elif e.status.startswith("201"):
                out.created += 1
            else:
                out.updated += 1
        return out


def _load_records(settings: Settings, box: Sandbox, today: date) -> None:
    from connectors.consent import StaticConsent
    from connectors.pipeline import Connector
    from connectors.pseudonym import Pseudonymizer

    exports = box.folder / "exports"
    exports.mkdir(exist_ok=True)
    register, mch, vacc = _exports(box, today, exports)
    parent_code, child_code = _codes(settings)
    codes = [parent_code, child_code]
    sink = _InProcessSink(settings)
    try:
        conn = Connector(
            municipality=DEMO_MUNICIPALITY.code,
            pseudo=Pseudonymizer(settings.secret("PHR_CONNECTOR_PSEUDONYM_KEY")),
            consent=StaticConsent({"mch": codes, "immunization": codes, "claims": []}),
            sink=sink,  # type: ignore[arg-type]
            register_path=register,
        )
        for path in (mch, vacc):
            conn.run_file(path)
    finally:
        sink.db.dispose()


def _write_info(box: Sandbox) -> None:
    text = f"""Developer sandbox (synthetic data; see docs/apps.md)

Demo parent: {PARENT["name"]} (born {PARENT["birthdate"]}), demo city {DEMO_MUNICIPALITY.name_en}
Virtual My Number card: {box.card}
  authentication PIN: {AUTH_PIN}
  signature PIN:      {SIGN_PIN}
Her child was born {box.child_birth.isoformat()}; the PHR server holds the child's
vaccinations and infant checkups (weight, height, head circumference).

Sign in: on the IdP's sign-in page choose the My Number card, then, in a second terminal,
  .venv/bin/phr card sign CODE --card {box.card}
with the code the page shows, and give the authentication PIN.
"""
    (box.folder / INFO_FILE).write_text(text, encoding="utf-8")
