"""Words of the portal's data-sources, withdrawal, deletion and notices pages (Japanese first,
English second), kept apart from consent.i18n so each page family owns its text."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "ja": {
        "sources_title": "わたしのデータの提供元",
        "sources_intro": "あなた（とお子さん）の記録を PHR 基盤に提供する自治体です。"
        "同意すると、自治体が記録を届けるようになります。",
        "state_label": "同意",
        "state_active": "同意しています",
        "state_withdrawn": "同意を取り消しました",
        "state_none": "同意していません",
        "link_pending": "自治体があなたを住民記録で確認しています",
        "link_linked": "確認済み",
        "link_no_match": "自治体の記録で見つかりませんでした",
        "categories": "記録の種類",
        "last_update": "最終更新",
        "never": "まだ届いていません",
        "children": "お子さん",
        "child_n": "お子さん {n}",
        "consent_button": "この自治体に同意する",
        "include_children": "お子さんの記録も（母子健康手帳で親子とわかるお子さん）",
        "withdraw_button": "同意を取り消す",
        "consented_notice": "同意しました。自治体があなたを確認すると、記録が届き始めます。",
        "withdrawn_notice": "同意を取り消しました。自治体からの新しい記録の提供は止まります。",
        "erased_notice": "これまでに届いた記録を {n} 件削除しました。",
        "shared_kept": "もう一人の保護者も見られるお子さんの記録 {n} 人分は削除していません。",
        "need_card": "自治体への同意には、マイナンバーカードでのサインインが必要です。"
        "カードでサインインしてからもう一度お試しください。",
        "pick_category": "記録の種類を一つ以上選んでください。",
        "withdraw_title": "{city} への同意を取り消す",
        "withdraw_intro": "取り消すと、自治体はあなた（と、あなたが同意したお子さん）の新しい記録を"
        "提供しなくなります。同意の履歴は残ります。",
        "withdraw_keep": "これまでに届いた記録は残す（あとで削除もできます）",
        "withdraw_delete": "これまでに届いた記録も削除する（元に戻せません）",
        "withdraw_delete_children": "お子さんの記録も削除する",
        "withdraw_confirm": "取り消す",
        "cancel": "やめる",
        "delete_title": "データの削除",
        "delete_intro": "あなたのデータを PHR 基盤から削除します。",
        "delete_what": "削除されるもの",
        "delete_records": "あなたの記録（すべての自治体の分）",
        "delete_children": "お子さんの記録も削除する",
        "delete_consents": "自治体とアプリへの同意はすべて取り消され、アプリは次のアクセスから"
        "読めなくなります",
        "delete_links": "自治体との照合結果と、お子さんとの保護者関係",
        "delete_notices": "お知らせ",
        "delete_kept": "残るもの：同意の履歴（いつ何に同意し、いつ取り消したか）と、"
        "誰がいつ記録を読んだかの記録。法令と監査のために残し、記録の中身は含みません。"
        "アプリがすでに受け取った記録はアプリの側に残ります。",
        "delete_next": "次へ",
        "review_title": "本当に削除しますか",
        "review_summary": "自治体 {cities} か所、アプリ {apps} 件の同意を取り消し、"
        "記録 {patients} 人分を削除します。",
        "review_shared": "もう一人の保護者も見られるお子さん {n} 人分の記録は残ります。",
        "review_irreversible": "削除した記録は元に戻せません。",
        "review_check": "元に戻せないことを理解しました",
        "delete_confirm": "削除する",
        "deleted_title": "削除しました",
        "deleted_text": "記録 {resources} 件を削除し、同意をすべて取り消しました。"
        "サインアウトしました。",
        "erase_failed": "いま記録を削除できませんでした。何も削除していません。"
        "しばらくしてからもう一度お試しください。",
        "erase_failed_withdrawn": "同意は取り消しました（新しい記録は届きません）。"
        "これまでに届いた記録はいま削除できませんでした。"
        "「わたしのデータの提供元」からあとで削除できます。",
        "delete_loaded_title": "{city} から届いた記録を削除する",
        "delete_loaded_intro": "同意はすでに取り消されています。これまでに届いた記録を削除します"
        "（元に戻せません）。同意の履歴は残ります。",
        "delete_loaded": "これまでに届いた記録を削除する",
        "notices_title": "お知らせ",
        "notices_none": "お知らせはありません。",
        "notices_unread": "未読 {n} 件",
        "notice_records_self": "新しい記録が届きました（{date}）",
        "notice_records_child": "お子さんの新しい記録が届きました（{date}）",
        "notice_vaccination_self": "予防接種の時期です：{vaccine} {dose} 回目（{due} から）",
        "notice_vaccination_child": "お子さんの予防接種の時期です：{vaccine} {dose} 回目"
        "（{due} から）",
        "mark_read": "既読にする",
        "mark_all_read": "すべて既読にする",
        "unread_label": "未読",
        "menu_sources": "わたしのデータの提供元",
        "menu_notices": "お知らせ",
        "menu_delete": "データの削除",
    },
    "en": {
        "sources_title": "My data sources",
        "sources_intro": "Municipalities that provide your (and your children's) records to the "
        "PHR platform. Once you consent, the city starts sending them.",
        "state_label": "Consent",
        "state_active": "You consented",
        "state_withdrawn": "Consent withdrawn",
        "state_none": "No consent",
        "link_pending": "The city is finding you in its resident register",
        "link_linked": "Found",
        "link_no_match": "The city could not find you in its register",
        "categories": "Kinds of records",
        "last_update": "Last update",
        "never": "Nothing has arrived yet",
        "children": "Children",
        "child_n": "Child {n}",
        "consent_button": "Consent for this city",
        "include_children": "My children's records too (children the MCH handbook names as mine)",
        "withdraw_button": "Withdraw consent",
        "consented_notice": "Consent recorded. Records start arriving once the city has found you.",
        "withdrawn_notice": "Consent withdrawn. The city sends no new records.",
        "erased_notice": "{n} records that had arrived were deleted.",
        "shared_kept": "Records of {n} child(ren) another guardian can also see were kept.",
        "need_card": "Consenting to a city needs a sign-in with your My Number card. Please "
        "sign in with the card and try again.",
        "pick_category": "Please choose at least one kind of record.",
        "withdraw_title": "Withdraw consent for {city}",
        "withdraw_intro": "Once withdrawn, the city sends no new records of you (or of the "
        "children you consented for). The history of your consents is kept.",
        "withdraw_keep": "Keep the records that already arrived (you can delete them later)",
        "withdraw_delete": "Delete the records that already arrived too (cannot be undone)",
        "withdraw_delete_children": "Delete my children's records too",
        "withdraw_confirm": "Withdraw",
        "cancel": "Cancel",
        "delete_title": "Delete my data",
        "delete_intro": "This deletes your data from the PHR platform.",
        "delete_what": "What is deleted",
        "delete_records": "Your records (from every city)",
        "delete_children": "Delete my children's records too",
        "delete_consents": "Every consent to cities and apps is withdrawn; apps are refused "
        "from their next request",
        "delete_links": "The cities' matches of you and your guardianships",
        "delete_notices": "Your notices",
        "delete_kept": "What stays: the history of your consents (what you agreed to and when "
        "you withdrew) and the record of who read what and when, kept for the law and for "
        "audit, without the records' content. Records an app already received stay with the "
        "app.",
        "delete_next": "Continue",
        "review_title": "Delete for good?",
        "review_summary": "Consents for {cities} city(ies) and {apps} app(s) will be withdrawn "
        "and the records of {patients} person(s) deleted.",
        "review_shared": "Records of {n} child(ren) another guardian can also see are kept.",
        "review_irreversible": "Deleted records cannot be restored.",
        "review_check": "I understand this cannot be undone",
        "delete_confirm": "Delete",
        "deleted_title": "Deleted",
        "deleted_text": "{resources} records were deleted and every consent withdrawn. You are "
        "signed out.",
        "erase_failed": "The records could not be deleted right now, and nothing was deleted. "
        "Please try again in a moment.",
        "erase_failed_withdrawn": "Your consent is withdrawn (no new records arrive), but the "
        "records that already arrived could not be deleted right now. You can delete them later "
        "from My data sources.",
        "delete_loaded_title": "Delete the records from {city}",
        "delete_loaded_intro": "Your consent is already withdrawn. This deletes the records that "
        "had arrived (cannot be undone). The history of your consents is kept.",
        "delete_loaded": "Delete the records that arrived",
        "notices_title": "Notices",
        "notices_none": "No notices.",
        "notices_unread": "{n} unread",
        "notice_records_self": "New records arrived ({date})",
        "notice_records_child": "New records of your child arrived ({date})",
        "notice_vaccination_self": "A vaccination is due: {vaccine} dose {dose} (from {due})",
        "notice_vaccination_child": "Your child's vaccination is due: {vaccine} dose {dose} "
        "(from {due})",
        "mark_read": "Mark as read",
        "mark_all_read": "Mark all as read",
        "unread_label": "Unread",
        "menu_sources": "My data sources",
        "menu_notices": "Notices",
        "menu_delete": "Delete my data",
    },
}


def words(lang: str) -> dict[str, str]:
    return WORDS[lang]
