"""Maternal and child health records → Encounter, Observation (JP Core body measurements with
LOINC and the JP code, UCUM units), RelatedPerson (the mother link). See docs/mch_csv.md for the
full table of codes."""

from __future__ import annotations

from typing import Any

from connectors.mapping.common import (
    JP_BODY,
    JP_OBS_CATEGORY,
    JP_SD,
    LOCAL,
    LOINC,
    OBS_CATEGORY,
    V3_ACT,
    V3_ROLE,
    Context,
    Entry,
    coding,
    ident,
    iso,
    quantity,
    ref,
)
from connectors.sources.base import Record

SOURCE = "mch"

# item → (LOINC code, LOINC display, JP body-measurement code or None, UCUM unit, profile)
BODY = "JP_Observation_BodyMeasurement"
VITAL = "JP_Observation_VitalSigns"
COMMON = "JP_Observation_Common"
ITEMS: dict[str, tuple[str | None, str, str | None, str, str]] = {
    "weight_kg": ("29463-7", "Body weight", "31000296", "kg", BODY),
    "birth_weight_g": ("8339-4", "Birth weight Measured", "31002900", "g", BODY),
    "height_cm": ("8302-2", "Body height", "31000298", "cm", BODY),
    "length_cm": ("8302-2", "Body height", "31000298", "cm", BODY),
    "head_cm": ("9843-4", "Head Occipital-frontal circumference", "31006116", "cm", BODY),
    "chest_cm": ("8279-2", "Chest Circumference at nipple line", "31000299", "cm", BODY),
    "abdominal_cm": (None, "腹囲", "31000301", "cm", BODY),
    "fundal_cm": ("11881-0", "Uterus Fundal height Tape measure", None, "cm", COMMON),
}
JP_DISPLAY = {
    "31000296": "体重",
    "31002900": "出生体重",
    "31000298": "身長",
    "31006116": "頭囲",
    "31000299": "胸囲",
    "31000301": "腹囲",
}
DIPSTICK_DISPLAY = {"neg": "−", "trace": "±", "1+": "+", "2+": "++", "3+": "+++"}
ENCOUNTER_TYPES = {
    "pregnancy_registration": ("pregnancy-registration", "妊娠届出"),
    "prenatal_checkup": ("prenatal-checkup", "妊婦健康診査"),
    "delivery": ("delivery", "出産"),
}


class _Builder:
    def __init__(self, ctx: Context, rec: Record, code: str) -> None:
        self.ctx = ctx
        self.rec = rec
        self.code = code
        self.system = ctx.record_system(SOURCE)
        self.entries: list[Entry] = [ctx.patient(code)]
        self.patient_ref = ctx.patient_ref(code)
        self.encounter: Entry | None = None
        self.when = iso(rec.data["date"])

    def key(self, item: str) -> str:
        return f"{self.rec.key}:{item}"

    def add_encounter(self, type_code: str, display: str) -> None:
        facility = self.rec.data.get("facility")
        res: dict[str, Any] = {
            "resourceType": "Encounter",
            "meta": {"profile": [JP_SD + "JP_Encounter"]},
            "identifier": ident(self.system, self.key("encounter")),
            "status": "finished",
            "class": coding(V3_ACT, "AMB", "ambulatory"),
            "type": [{"coding": [coding(LOCAL + "mch-encounter", type_code, display)]}],
            "subject": self.patient_ref,
            "period": {"start": self.when, "end": self.when},
        }
        if facility:
            org = self.ctx.organization(SOURCE, facility)
            self.entries.append(org)
            res["serviceProvider"] = ref(org)
        self.encounter = Entry("Encounter", self.system, self.key("encounter"), res)
        self.entries.append(self.encounter)

    def observation(
        self,
        item: str,
        code: dict[str, Any],
        categories: list[dict[str, str]],
        profile: str,
        **value: Any,
    ) -> None:
        res: dict[str, Any] = {
            "resourceType": "Observation",
            "meta": {"profile": [JP_SD + profile]},
            "identifier": ident(self.system, self.key(item)),
            "status": "final",
            "category": [{"coding": [c]} for c in categories],
            "code": code,
            "subject": self.patient_ref,
            "effectiveDateTime": self.when,
            **value,
        }
        if self.encounter is not None:
            res["encounter"] = ref(self.encounter)
        self.entries.append(Entry("Observation", self.system, self.key(item), res))

    def measurement(
        self, item: str, value: float | int | None, *, field: str | None = None
    ) -> None:
        if value is None:
            return
        loinc, display, jp, unit, profile = ITEMS[item]
        codings = []
        if loinc:
            codings.append(coding(LOINC, loinc, display))
        if jp:
            codings.append(coding(JP_BODY, jp, JP_DISPLAY[jp]))
        cats = [coding(OBS_CATEGORY, "exam", "Exam")]
        if profile == BODY:
            cats = [
                coding(JP_OBS_CATEGORY, "body-measurement", "Body Measurement"),
                coding(OBS_CATEGORY, "vital-signs", "Vital Signs"),
            ]
        self.observation(
            field or item,
            {"coding": codings, "text": display if not jp else JP_DISPLAY[jp]},
            cats,
            profile,
            valueQuantity=quantity(value, unit),
        )

    def gestational_age(self, weeks: int | None, days: int | None) -> None:
        if weeks is None:
            return
        total = weeks * 7 + (days or 0)
        self.observation(
            "gestational-age",
            {"coding": [coding(LOINC, "11884-4", "Gestational age Estimated")], "text": "妊娠週数"},
            [coding(OBS_CATEGORY, "exam", "Exam")],
            COMMON,
            valueQuantity=quantity(total, "d"),
        )

    def coded(
        self,
        item: str,
        loinc: tuple[str, str] | None,
        local: str,
        text: str,
        value: str | None,
        display: dict[str, str],
    ) -> None:
        if value is None:
            return
        codings = [coding(LOINC, *loinc)] if loinc else []
        codings.append(coding(LOCAL + "mch-item", local, text))
        self.observation(
            item,
            {"coding": codings, "text": text},
            [
                coding(
                    OBS_CATEGORY,
                    "laboratory" if loinc else "exam",
                    "Laboratory" if loinc else "Exam",
                )
            ],
            COMMON,
            valueCodeableConcept={
                "coding": [coding(LOCAL + local, value, display.get(value, value))],
                "text": display.get(value, value),
            },
        )


def map_record(ctx: Context, rec: Record, code: str, mother_code: str | None) -> list[Entry]:
    """All resources for one MCH record. `mother_code` is the mother's pseudonymous code when
    she also consented (otherwise the link is left out)."""
    b = _Builder(ctx, rec, code)
    d = rec.data
    kind = rec.kind
    if kind in ENCOUNTER_TYPES:
        b.add_encounter(*ENCOUNTER_TYPES[kind])
    if kind == "pregnancy_registration":
        if d.get("edd"):
            b.observation(
                "edd",
                {"coding": [coding(LOCAL + "mch-item", "edd", "出産予定日")], "text": "出産予定日"},
                [coding(OBS_CATEGORY, "exam", "Exam")],
                COMMON,
                valueDateTime=iso(d["edd"]),
            )
    elif kind == "prenatal_checkup":
        b.gestational_age(d.get("ga_weeks"), d.get("ga_days"))
        b.measurement("weight_kg", d.get("weight_kg"), field="weight")
        b.measurement("fundal_cm", d.get("fundal_cm"), field="fundal-height")
        b.measurement("abdominal_cm", d.get("abdominal_cm"), field="abdominal-circumference")
        if d.get("sbp") is not None:
            b.observation(
                "blood-pressure",
                {
                    "coding": [
                        coding(LOINC, "85354-9", "Blood pressure panel with all children optional")
                    ],
                    "text": "血圧",
                },
                [coding(OBS_CATEGORY, "vital-signs", "Vital Signs")],
                VITAL,
                component=[
                    {
                        "code": {"coding": [coding(LOINC, "8480-6", "Systolic blood pressure")]},
                        "valueQuantity": quantity(d["sbp"], "mmHg", "mm[Hg]"),
                    },
                    {
                        "code": {"coding": [coding(LOINC, "8462-4", "Diastolic blood pressure")]},
                        "valueQuantity": quantity(d["dbp"], "mmHg", "mm[Hg]"),
                    },
                ],
            )
        b.coded(
            "urine-protein",
            ("20454-5", "Protein [Presence] in Urine by Test strip"),
            "urine-protein",
            "尿蛋白",
            d.get("urine_protein"),
            DIPSTICK_DISPLAY,
        )
        b.coded(
            "urine-glucose",
            ("25428-4", "Glucose [Presence] in Urine by Test strip"),
            "urine-glucose",
            "尿糖",
            d.get("urine_glucose"),
            DIPSTICK_DISPLAY,
        )
        b.coded("edema", None, "edema", "浮腫", d.get("edema"), DIPSTICK_DISPLAY)
    elif kind == "delivery":
        # The child's birth record; subject = the child.
        b.gestational_age(d.get("ga_weeks"), d.get("ga_days"))
        b.measurement("birth_weight_g", d.get("birth_weight_g"), field="birth-weight")
        b.measurement("length_cm", d.get("length_cm"), field="birth-length")
        b.measurement("head_cm", d.get("head_cm"), field="birth-head-circumference")
        b.measurement("chest_cm", d.get("chest_cm"), field="birth-chest-circumference")
        for minute, loinc, key in ((1, "9272-6", "apgar1"), (5, "9274-2", "apgar5")):
            if d.get(key) is not None:
                b.observation(
                    f"apgar-{minute}min",
                    {
                        "coding": [coding(LOINC, loinc, f"{minute} minute Apgar Score")],
                        "text": f"アプガースコア{minute}分",
                    },
                    [coding(OBS_CATEGORY, "exam", "Exam")],
                    COMMON,
                    valueInteger=d[key],
                )
        if d.get("method"):
            b.coded(
                "delivery-method",
                None,
                "delivery-method",
                "分娩方法",
                d["method"],
                {
                    "vaginal": "経膣分娩",
                    "cesarean": "帝王切開",
                    "vacuum": "吸引分娩",
                    "forceps": "鉗子分娩",
                },
            )
    elif kind == "infant_checkup":
        ck_code, ck_display = d["checkup"]
        b.add_encounter(f"infant-checkup-{ck_code}", ck_display)
        b.measurement("weight_kg", d.get("weight_kg"), field="weight")
        b.measurement("height_cm", d.get("height_cm"), field="height")
        b.measurement("head_cm", d.get("head_cm"), field="head-circumference")
        b.measurement("chest_cm", d.get("chest_cm"), field="chest-circumference")
        b.coded(
            "judgement",
            None,
            "checkup-judgement",
            "判定",
            d.get("judgement"),
            {"healthy": "健康", "observe": "要観察", "refer": "要精査"},
        )
    if mother_code and kind in ("delivery", "infant_checkup"):
        b.entries.append(mother_link(ctx, code, mother_code))
    return b.entries


def mother_link(ctx: Context, child_code: str, mother_code: str) -> Entry:
    """RelatedPerson: the mother of the child (patient = child), identified by her own
    pseudonymous code so the PHR server can connect her record and grant guardian access."""
    system = ctx.record_system(SOURCE)
    value = f"mother:{child_code}"
    res = {
        "resourceType": "RelatedPerson",
        "meta": {"profile": [JP_SD + "JP_RelatedPerson"]},
        "identifier": [
            {"system": system, "value": value},
            {"system": ctx.patient_system, "value": mother_code},
        ],
        "active": True,
        "patient": ctx.patient_ref(child_code),
        "relationship": [{"coding": [coding(V3_ROLE, "MTH", "mother")]}],
    }
    return Entry("RelatedPerson", system, value, res)
