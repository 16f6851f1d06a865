"""Links into the web console that a message carries: "approve this request", "this alarm".

A department leader approves a K7 request from the link in a WeCom message on their phone;
a supervisor opens the alarm from the email. The link is built from
``[notifications] console_base_url`` and the record the event names; an event that names
no such record, or a cabinet with no console address configured, gets no link.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from kiosk.notify.message import EventView


@dataclass(frozen=True)
class Link:
    zh: str
    en: str
    url: str


def _id(value: object) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def console_link(event: EventView, base: str | None) -> Link | None:
    """Where in the console the reader acts on ``event``, or None."""
    if not base:
        return None
    p = event.payload
    if event.type.startswith("approval.") and (ident := _id(p.get("approval"))):
        if event.type == "approval.requested":
            return Link("审批此申请", "Approve or refuse this request",
                        f"{base}/console/approvals/{ident}")
        return Link("查看此申请", "Open this request", f"{base}/console/approvals/{ident}")
    if event.type.startswith("alarm.") and (ident := _id(p.get("alarm"))):
        return Link("处理此报警", "Handle this alarm", f"{base}/console/alarms/{ident}")
    if event.type == "report.generated" and (ident := _id(p.get("report"))):
        return Link("查看并确认报表", "Read and acknowledge the report",
                    f"{base}/console/reports/{ident}")
    if event.type == "loan.due_soon" and (ident := _id(p.get("loan"))):
        return Link("查看借出记录", "Open the loan", f"{base}/console/loans/{ident}")
    return None
