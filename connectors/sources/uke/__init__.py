"""NHI claims in the UKE receipt format (レセプト電算処理システム): 医科 and 調剤 files as the city
receives them as 国保保険者. See docs/uke.md.

`framing` streams the file (encoding, lines, IR/YK, RE, GO) and yields one Record per receipt;
`records` reads each record type into the receipt's data; `fields` reads the values (dates in
西暦 or 和暦, codes, counts); `layout` holds the record types, field counts and field names."""

from __future__ import annotations

from connectors.sources.uke.fields import month_end, parse_date, parse_year_month
from connectors.sources.uke.framing import ENCODING, SOURCE, not_cp932, read
from connectors.sources.uke.layout import FIELD_COUNTS, LAYOUT, RECORD_TYPE, RECORDS

__all__ = [
    "ENCODING",
    "FIELD_COUNTS",
    "LAYOUT",
    "RECORDS",
    "RECORD_TYPE",
    "SOURCE",
    "month_end",
    "not_cp932",
    "parse_date",
    "parse_year_month",
    "read",
]
