"""Alarm kinds in the company's words, zh-CN and English: one table for messages and reports.

A Chinese report or notification must never show ``key_removed_unauthorised`` to a
supervisor. An unknown kind (one added later) is shown by its code in both languages
rather than failing.
"""

from __future__ import annotations

ALARM_KINDS: dict[str, tuple[str, str]] = {
    "door_forced": ("柜门被强行打开", "Cabinet door forced"),
    "door_held_open": ("柜门长时间未关", "Cabinet door held open"),
    "slot_left_open": ("格口未关", "Slot left open"),
    "key_removed_unauthorised": ("钥匙被非法取出", "Key removed without a release"),
    "key_inserted_unexpectedly": ("格口出现未登记钥匙", "Unexpected key in a slot"),
    "wrong_slot": ("钥匙放错格口", "Key returned to the wrong slot"),
    "returned_by_other": ("他人代还钥匙", "Key returned by someone else"),
    "key_overdue": ("钥匙逾期未还", "Key overdue"),
    "count_mismatch": ("每日盘点不符", "Daily count mismatch"),
    "lock_fault": ("锁故障", "Lock fault"),
    "bus_fault": ("锁控总线故障", "Lock bus fault"),
    "duress": ("胁迫报警", "Duress alarm"),
    "manual": ("人工报告", "Reported by a person"),
}


def alarm_kind_text(kind: str, lang: str) -> str:
    """The kind in ``lang`` ("zh" or "en"); the code itself when the kind is unknown."""
    zh, en = ALARM_KINDS.get(kind, (kind, kind))
    return zh if lang == "zh" else en
