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
import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from connectors import pseudonym_keys, synth
from connectors.consent import StaticConsent
from connectors.mapping.common import Entry
from connectors.pipeline import Connector
from connectors.register import HEADERS as REGISTER_HEADERS
from connectors.sources.mch_csv import HEADERS as MCH_HEADERS
from connectors.sources.vaccination_csv import HEADERS as VACC_HEADERS
from connectors.transport import Outcomes, transaction
from consent import linkage
from consent.app import attribute_box
from consent.models import PatientLink
from idp.authority_sim.ca import init_authority
from idp.card.mapping import add_binding, binding
from idp.card.profile import AUTH, SIGN, BasicAttributes, fingerprint
from idp.card.services import CardServices, store_attributes
from idp.card.vcard import VirtualCard
from idp.models import Person
from idp.subjects import PHR_SECTOR, PairwiseSubjects
from phr_core.config import Settings
from phr_core.db import Database
from phr_core.demo_data import DEMO_MUNICIPALITY
from phr_core.secrets import derive_key
from phr_core.tokens import AccessToken
from phr_server import transaction as tx
from phr_server.policy import Access, parse_scope
from phr_server.repository import Repository
from phr_server.storage import Keyring

AUTH_PIN = "1234"  # the card's authentication PIN (4 digits)
SIGN_PIN = "SANDBOX1"  # the signature PIN (6–16 upper-case letters and digits)
INFO_FILE = "README.txt"
CHILD_AGE_DAYS = 368  # just over a year: the 1-year doses (MR, varicella, boosters) are due
ADDRESS = "福島県会津若松市東栄町3-46"
CHILD_RESIDENT = "1000000102"  # invented resident numbers, only inside the synthetic city
FACILITY = "0711234567"


@dataclass(frozen=True)
class Citizen:
    """A demo citizen: a card holder and the child's guardian in the demo city."""

    key: str  # names the card file
    name: str
    birthdate: str
    sex: str  # male | female (the card); the register writes 1 | 2
    resident: str
    relationship: str  # to the child: mother | father

    @property
    def attributes(self) -> dict[str, str]:
        return {"name": self.name, "birthdate": self.birthdate, "sex": self.sex, "address": ADDRESS}

    @property
    def card_file(self) -> str:
        return f"{self.key}-card.json"


# The parent the guide uses, and a second guardian of the same child (each has their own
# pairwise subjects, grants and revocations).
CITIZENS = (
    Citizen("parent", "会津 さくら", "1993-06-15", "female", "1000000101", "mother"),
    Citizen("father", "会津 大輔", "1991-02-03", "male", "1000000103", "father"),
)
PARENT = CITIZENS[0]


@dataclass(frozen=True)
class Sandbox:
    """Where the sandbox's files are and what a developer needs to know."""

    folder: Path
    child_birth: date
    person_ids: dict[str, str]  # citizen key → the IdP's internal person id

    def card_of(self, key: str) -> Path:
        return self.folder / f"{key}-card.json"

    @property
    def card(self) -> Path:
        """The card of the parent the guide uses."""
        return self.card_of(PARENT.key)

    def summary(self) -> str:
        return (
            f"sandbox: demo parent's card {self.card} "
            f"(authentication PIN {AUTH_PIN}, signature PIN {SIGN_PIN}; the other parent's: "
            f"{self.card_of(CITIZENS[1].key)}); their child was born "
            f"{self.child_birth.isoformat()}; see {self.folder / INFO_FILE}"
        )


def folder(settings: Settings) -> Path:
    return settings.var_dir / "sandbox"


def prepare(settings: Settings, today: date | None = None) -> Sandbox:
    """Make (once) and load the sandbox family; returns where the cards are."""
    today = today or date.today()
    out = folder(settings)
    out.mkdir(parents=True, exist_ok=True)
    family_file = out / "family.json"
    family = json.loads(family_file.read_text("utf-8")) if family_file.exists() else {}
    if "child_birth" not in family or set(family.get("person_ids", {})) != {
        c.key for c in CITIZENS
    }:
        birth = family.get("child_birth") or (today - timedelta(days=CHILD_AGE_DAYS)).isoformat()
        ids = family.get("person_ids", {})
        family = {
            "child_birth": birth,
            "person_ids": {c.key: ids.get(c.key) or str(uuid.uuid4()) for c in CITIZENS},
        }
        family_file.write_text(json.dumps(family), encoding="utf-8")
    box = Sandbox(out, date.fromisoformat(family["child_birth"]), family["person_ids"])
    codes = _codes(settings)
    for citizen in CITIZENS:
        _issue_card(settings, box, citizen)
        sub = _enroll(settings, box, citizen)
        _link(settings, sub, citizen, codes[citizen.resident], codes[CHILD_RESIDENT], box)
    _load_records(settings, box, today, codes)
    _write_info(box)
    return box


# --- the card and the IdP ---------------------------------------------------------------------


def _issue_card(settings: Settings, box: Sandbox, citizen: Citizen) -> None:
    path = box.card_of(citizen.key)
    if path.exists():
        return
    issued = init_authority(settings).issue_card(BasicAttributes(**citizen.attributes))
    VirtualCard.create(
        path,
        (issued.auth_cert, issued.auth_key),
        (issued.sign_cert, issued.sign_key),
        AUTH_PIN,
        SIGN_PIN,
    )


def _enroll(settings: Settings, box: Sandbox, citizen: Citizen) -> str:
    """Bind the card's two certificates to a fixed person id, as a first card sign-in would,
    so the consent service can be told about her before she ever signs in. Returns her
    PHR-sector subject."""
    card = VirtualCard.load(box.card_of(citizen.key))
    person_id = box.person_ids[citizen.key]
    services = CardServices.from_settings(settings)
    db = Database(settings.database_urls["idp"])
    try:
        with db.session() as s:
            if s.get(Person, person_id) is None:
                s.add(Person(id=person_id))
                s.flush()
            for kind in (AUTH, SIGN):
                cert = card.certificate(kind)
                der = cert.public_bytes(serialization.Encoding.DER)
                key = services.binding_key(fingerprint(der))
                if binding(s, key) is None:
                    add_binding(s, person_id, kind, key, cert.not_valid_after_utc, "enrollment")
            store_attributes(s, services, person_id, BasicAttributes(**citizen.attributes))
            return PairwiseSubjects(settings.secret("PHR_PAIRWISE_KEY")).subject(
                s, PHR_SECTOR, person_id
            )
    finally:
        db.dispose()


# --- the consent service ----------------------------------------------------------------------


def _codes(settings: Settings) -> dict[str, str]:
    """The demo city's pseudonymous codes of the family's resident numbers."""
    pseudo = pseudonym_keys.for_settings(settings)
    residents = [c.resident for c in CITIZENS] + [CHILD_RESIDENT]
    return {r: pseudo.code(r) for r in residents}


def _link(
    settings: Settings, sub: str, citizen: Citizen, code: str, child_code: str, box: Sandbox
) -> None:
    """The parent's consent to the demo city (MCH records and vaccinations, for the child too)
    and the city's answer naming their code and the child: what the portal and `phr connector
    link` do."""
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
                attributes=citizen.attributes,
                recorded_by="phr-sandbox",
            )
            assert request is not None  # noqa: S101  (not linked yet, checked above)
            linkage.answer(
                s,
                municipality=city,
                request_id=request.id,
                code=code,
                children=[linkage.Child(child_code, box.child_birth, citizen.relationship)],
                recorded_by="phr-sandbox",
            )
    finally:
        db.dispose()


# --- the PHR server ---------------------------------------------------------------------------


def _exports(box: Sandbox, today: date, out: Path) -> list[Path]:
    """The family's rows in the city's export formats, up to today: the resident register,
    the MCH records (birth, infant checkups) and the vaccination register."""
    birth = box.child_birth
    rnd = random.Random(7)  # noqa: S311 (synthetic data)
    register = out / "register.csv"
    with register.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(REGISTER_HEADERS)
        for c in CITIZENS:
            sex = "2" if c.sex == "female" else "1"
            w.writerow([c.resident, c.name, "", c.birthdate, sex, ADDRESS, "", "", "", ""])
        w.writerow([CHILD_RESIDENT, "会津 ひなた", "", birth.isoformat(), "1", ADDRESS,
                    "", "", "", ""])  # fmt: skip
    mch = out / "mch.csv"
    with mch.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MCH_HEADERS)

        def row(**kv: object) -> None:
            w.writerow([kv.get(h, "") for h in MCH_HEADERS])

        row(記録番号="SBX-B", 記録種別="出産", 住民番号=CHILD_RESIDENT, 母住民番号=PARENT.resident,
            実施日=birth.isoformat(), 医療機関コード=FACILITY, 妊娠週数=39, 妊娠日数=2,
            出生体重=3120, 身長="49.5", 頭囲="33.0", 胸囲="32.0", アプガー1分=9, アプガー5分=10,
            分娩方法="経膣分娩", 性別="男")  # fmt: skip
        for label, age in synth.INFANT_CHECKUPS:
            d = birth + timedelta(days=age + 5)
            if d > today:
                continue
            wt, ht, hd, ch = synth.GROWTH[age]
            row(記録番号=f"SBX-C{age}", 記録種別="乳幼児健診", 住民番号=CHILD_RESIDENT,
                母住民番号=PARENT.resident, 実施日=d.isoformat(), 医療機関コード=FACILITY,
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
        master = settings.secret("PHR_FHIR_DATA_KEY")
        self.repo = Repository(
            Keyring(master), derive_key(master.split()[0], "phr_server/page-cursor/v1")
        )
        self.db = Database(settings.database_urls["fhir"])
        self.client_id = settings.option("PHR_CONNECTOR_CLIENT_ID")

    def send(self, entries: list[Entry]) -> Outcomes:  # connectors.transport.Sink
        scope = "system/*.cu"
        token = AccessToken(
            subject=self.client_id,
            client_id=self.client_id,
            scopes=frozenset({scope}),
            expires_at=int(time.time()) + 60,
            municipality=DEMO_MUNICIPALITY.code,
        )
        scopes = [parse_scope(scope)]  # a SMART scope: never None
        access = Access(token=token, raw_token="", scopes=scopes)  # type: ignore[arg-type]  # above
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


def _load_records(settings: Settings, box: Sandbox, today: date, codes: dict[str, str]) -> None:
    """The family's exports through the connector's reading, consent gate, mapping and
    validation, into the PHR server."""
    exports = box.folder / "exports"
    exports.mkdir(exist_ok=True)
    register, mch, vacc = _exports(box, today, exports)
    consented = sorted(codes.values())
    sink = _InProcessSink(settings)
    try:
        conn = Connector(
            municipality=DEMO_MUNICIPALITY.code,
            pseudo=pseudonym_keys.for_settings(settings),
            consent=StaticConsent({"mch": consented, "immunization": consented, "claims": []}),
            sink=sink,
            register_path=register,
        )
        for path in (mch, vacc):
            conn.run_file(path)
    finally:
        sink.db.dispose()


def _write_info(box: Sandbox) -> None:
    cards = "\n".join(
        f"  {c.name} ({c.relationship} of the child, born {c.birthdate}): {box.card_of(c.key)}"
        for c in CITIZENS
    )
    text = f"""Developer sandbox (synthetic data; see docs/apps.md)

Demo city: {DEMO_MUNICIPALITY.name_en} ({DEMO_MUNICIPALITY.code})
Virtual My Number cards of the two parents:
{cards}
PINs (both cards): authentication {AUTH_PIN}, signature {SIGN_PIN}
Their child was born {box.child_birth.isoformat()}; the PHR server holds the child's
vaccinations and infant checkups (weight, height, head circumference).

Sign in: on the IdP's sign-in page, in a second terminal,
  .venv/bin/phr card sign CODE --card {box.card}
with the code the page shows, and give the authentication PIN.
"""
    (box.folder / INFO_FILE).write_text(text, encoding="utf-8")
