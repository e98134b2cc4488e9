"""Demo facts every service agrees on (the demo cities and family); each service's own demo
loader reads them, the launcher (launcher/demo.py) runs the loaders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class DemoMunicipality:
    code: str  # 全国地方公共団体コード, six digits with the check digit
    name_ja: str
    name_en: str


# Synthetic data only: the seed city lends its name and code, the records are invented.
DEMO_MUNICIPALITY = DemoMunicipality("072028", "会津若松市（デモ）", "Aizuwakamatsu (demo)")
# The development setup's second city (`phr dev run`, PHR_DEV_SECOND_CITY): its own PHR server
# and connector; the demo family moved there from the first.
SECOND_MUNICIPALITY = DemoMunicipality("072010", "福島市（デモ）", "Fukushima (demo)")
DEMO_MUNICIPALITIES = {m.code: m for m in (DEMO_MUNICIPALITY, SECOND_MUNICIPALITY)}


@dataclass(frozen=True)
class DemoFamily:
    """A demo parent (development sign-in citizen number `parent_citizen`) linked to the demo
    city with one child, so the portal's records, growth chart and schedule show something.
    The child's age is fixed relative to the day the demo data is loaded."""

    parent_citizen: int = 1
    parent_code: str = "demo-parent-0001"  # the city's pseudonymous codes (synthetic)
    child_code: str = "demo-child-0001"
    parent_birth: date = date(1992, 5, 10)
    child_age_days: int = 400
    child_sex: str = "female"

    def child_birth(self, today: date | None = None) -> date:
        return (today or date.today()) - timedelta(days=self.child_age_days)


DEMO_FAMILY = DemoFamily()


@dataclass(frozen=True)
class MovedFamily:
    """The demo family after moving from the first city to the second (SECOND_MUNICIPALITY):
    the second city knows them by other resident numbers, so by other pseudonymous codes;
    records before the move stay in the first city, newer ones are the second city's."""

    parent_code: str = "demo-parent-0001-b"
    child_code: str = "demo-child-0001-b"
    moved_days_ago: int = 14

    def moved_on(self, today: date | None = None) -> date:
        return (today or date.today()) - timedelta(days=self.moved_days_ago)


MOVED_FAMILY = MovedFamily()
