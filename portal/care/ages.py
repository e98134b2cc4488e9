"""Age and interval arithmetic for the routine immunizations (portal/care/schedule.py), by the
rules Japanese law counts ages and intervals with. Pure date functions.

Age arithmetic: 年齢計算ニ関スル法律 and 民法143条 as applied by the MHLW 事務連絡
「定期の予防接種における対象者の解釈について」 (restated by Tome and Natori city), and the
MHLW rotavirus Q&A (問5, on kansensho.jp): a child reaches N months (or years) at the end of
the day before the corresponding day, or on the last day of the month when that month has no
corresponding day (`reach`); "from N months" starts on that day, and "until N months"
(「…に至るまで」) includes it. Born 2020-04-01: 1 year on 2021-03-31, the last day under 1
and the first day from 1. Ages are counted from the day of birth for every child: the 施行令
says 生後 N 月 and has no corrected age for premature births.

Intervals: "N days or more apart" (N日以上の間隔) means N whole days between, so the next dose
may be given N + 1 days after the previous one (27 days: the same weekday four weeks later);
"N months" means from the corresponding day N months later (`months_after`). Rotavirus ages
count the day of birth as 0 weeks 0 days (Q&A 問5), and both "from" and "until" include the day.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def fiscal_year_start(d: date) -> int:
    return d.year if d.month >= 4 else d.year - 1


def months_after(given: date, months: int) -> date:
    """The first day a dose may follow `given` after an interval of `months` months: the
    corresponding day, or the first day of the next month when there is none (Natori city's
    restatement of the MHLW interpretation)."""
    clamped = add_months(given, months)
    if clamped.day == given.day:
        return clamped
    return clamped + timedelta(days=1)


def reach(birth: date, months: int) -> date:
    """The day a child born on `birth` reaches `months` months of age (see the module notes)."""
    if months == 0:
        return birth
    y, m = divmod(birth.month - 1 + months, 12)
    year, month = birth.year + y, m + 1
    last = calendar.monthrange(year, month)[1]
    if birth.day > last:
        return date(year, month, last)  # no corresponding day: the month's last day
    return date(year, month, birth.day) - timedelta(days=1)


def age_day(birth: date, months: int = 0, days: int = 0) -> date:
    return reach(birth, months) + timedelta(days=days)


def school_entry(birth: date) -> date:
    """April 1 of the year a child starts elementary school: the April after turning 6, with
    children born January 1 – April 1 entering the year they turn 6 (they turn 6 'before' April 2
    under the age-counting law)."""
    year = birth.year + 6 if (birth.month, birth.day) <= (4, 1) else birth.year + 7
    return date(year, 4, 1)


def fiscal_turning(birth: date, age: int) -> int:
    """The fiscal year (April–March) in which the child turns `age`; someone born April 1 turns
    a year older at the end of March 31 (age-counting law), so belongs to the earlier year."""
    turning = birth.replace(year=birth.year + age) if not (birth.month == 2 and birth.day == 29) \
        else date(birth.year + age, 3, 1)  # fmt: skip
    return fiscal_year_start(turning - timedelta(days=1))
