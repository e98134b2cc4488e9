"""The UKE record layouts as the 記録条件仕様 defines them: the record types read and ignored,
the field count of each record, and every field name a problem may carry."""

from __future__ import annotations

IGNORED = {
    "SN", "JD", "MF", "SJ", "MN", "RC", "KH", "JY", "EX", "HR", "TI", "TR", "TS", "GR",
    "KI", "TK", "ST", "ON",
}  # fmt: skip
RECORDS = {"IR", "YK", "RE", "HO", "KO", "SY", "SI", "IY", "TO", "CO", "SH", "CZ", "GO"} | IGNORED
# Fields per record (the record type counted as 1), as the 記録条件仕様 defines them: every
# field is written, an empty one as nothing between two commas, so a record with another count
# was cut or shifted and its values cannot be trusted. 医科: shared/reference/uke.md §5, layouts
# verified against [M] myclinic-ts and [O] OpenReceiptViewer (IR 10, RE 38, HO 15, KO 12, SN 9,
# JD 33, MF 33, SY 8, SI 44, IY 44, TO 48, CO 5, SJ 3, GO 4); implementations, not the PDF.
# 調剤: [T] pharma-oss/pharma-oss@8091090f src/lib/receipt/dispensing_uke_validation.ts, its
# transcription of the 支払基金 記録条件仕様 調剤 令和8年6月版 (YK 9, RE 42, SN 9, IY 10, GO 4), and
# CZ 71, where [G] (a pharmacy's own UKE → SQLite loader, "CZ: 調剤情報レコード（SSK仕様 71
# フィールド）", and its test-file generator, which writes 71) agrees field by field: 15 fixed
# fields, 加算料①–⑩ (16–45), 一包化日数 and 分割調剤 (46–52), 包括管理料等 and 他医療機関 (53–54),
# 外来服薬支援料2 (55–57), 調剤管理料 (58–62) and its 時間外等加算 (63–65), 薬剤料減算 (66–71).
# Not counted (docs/uke.md): 調剤 SH, where only [T] gives a count (10; [G] writes 3), and the
# 調剤 HO (only [T]: 14), KO, TO, CO, JD, MF, KI, TK, ST and insurer-side MN, RC, KH, … with one
# source or none; a missing trailing field of those reads empty.
FIELD_COUNTS: dict[str, dict[str, int]] = {
    "medical": {
        "IR": 10, "RE": 38, "HO": 15, "KO": 12, "SN": 9, "JD": 33, "MF": 33, "SY": 8,
        "SI": 44, "IY": 44, "TO": 48, "CO": 5, "SJ": 3, "GO": 4,
    },
    "pharmacy": {"YK": 9, "RE": 42, "SN": 9, "CZ": 71, "IY": 10, "GO": 4},
}  # fmt: skip

RECORD_TYPE = (
    "レコード識別"  # field 1 of every record: what a problem names when the type is unknown
)

# Every field name a problem may carry: the record types and the `RT.名前` fields of the
# layouts above. A problem's field is looked up here (safe_field), so a value from the file can
# never stand in for it; tests/connectors/test_robust_readers.py checks that every name the
# parsers raise is listed.
LAYOUT = frozenset(
    RECORDS
    | {RECORD_TYPE}
    | {
        "IR.点数表", "YK.点数表", "IR.都道府県", "YK.都道府県", "IR.医療機関コード",
        "YK.薬局コード", "IR.請求年月", "YK.請求年月",
        "RE.レセプト番号", "RE.レセプト種別", "RE.診療年月", "RE.調剤年月", "RE.男女区分",
        "RE.生年月日", "RE.入院年月日", "RE.医療機関コード", "RE.都道府県", "RE.点数表",
        "HO.保険者番号", "HO.被保険者証番号", "HO.診療実日数", "HO.処方箋受付回数", "HO.合計点数",
        "HO.一部負担金", "HO.負担金額",
        "KO.負担者番号", "KO.診療実日数", "KO.処方箋受付回数", "KO.合計点数",
        "SY.傷病名コード", "SY.修飾語コード", "SY.転帰区分", "SY.診療開始日",
        "SI.診療識別", "SI.診療行為コード", "SI.点数", "SI.回数",
        "IY.診療識別", "IY.医薬品コード", "IY.使用量", "IY.点数", "IY.回数",
        "TO.診療識別", "TO.特定器材コード", "TO.点数", "TO.回数",
        "CO.診療識別", "CO.コメントコード",
        "SH.単位薬剤料",
        "CZ.薬剤調製料コード", "CZ.処方箋交付年月日", "CZ.調剤年月日", "CZ.処方箋受付回",
        "CZ.調剤数量", "CZ.薬剤調製料点数", "CZ.薬剤料点数",
    }
)  # fmt: skip
