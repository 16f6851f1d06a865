"""Email through the configured SMTP server: stdlib ``EmailMessage`` and ``smtplib``.

One connection per message: notifications are rare (alarms, reports), and a fresh
connection never trips over a server that dropped an idle one. ``security`` is ``none``
(plain, a relay on the LAN), ``starttls`` (upgrade, port 587) or ``tls`` (implicit TLS, port
465); certificates are verified against the system store. The password is only handed to
``SMTP.login`` and never formatted into an error.

Blocking by design: the dispatcher calls ``send_email`` in a worker thread.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from kiosk.notify.message import Message
from kiosk.notify.outcome import Outcome, short
from kiosk.notify.settings import SmtpSettings
from kiosk.store.types import utcnow


def build_email(
    smtp: SmtpSettings, *, to: str, message: Message, event_type: str | None = None,
    delivery_id: str | None = None,
) -> EmailMessage:
    """The message as sent: UTF-8 text, with the delivery id for de-duplication."""
    mail = EmailMessage()
    mail["From"] = smtp.from_address
    mail["To"] = to
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = make_msgid(
        idstring=delivery_id, domain=smtp.from_address.rpartition("@")[2]
    )
    if event_type:
        mail["X-Kiosk-Event"] = event_type
    if delivery_id:
        mail["X-Kiosk-Delivery"] = delivery_id
    mail.set_content(message.text, charset="utf-8")
    return mail


def _connect(smtp: SmtpSettings) -> smtplib.SMTP:
    if smtp.security == "tls":
        return smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s,
                                context=ssl.create_default_context())
    client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
    if smtp.security == "starttls":
        client.ehlo()
        client.starttls(context=ssl.create_default_context())
        client.ehlo()
    return client


def _permanent(code: int | None) -> bool:
    """SMTP 5xx replies are permanent (RFC 5321); 4xx and lost connections are retried."""
    return code is not None and 500 <= code < 600


def send_email(
    smtp: SmtpSettings, *, to: str, message: Message, event_type: str | None = None,
    delivery_id: str | None = None,
) -> Outcome:
    """Hand one message to the server; the outcome says whether to retry."""
    mail = build_email(smtp, to=to, message=message, event_type=event_type,
                       delivery_id=delivery_id)
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with _connect(smtp) as client:
            if smtp.username is not None and smtp.password is not None:
                client.login(smtp.username, smtp.password.get_secret_value())
            client.send_message(mail)  # one recipient: a refusal raises
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [c for c, _ in exc.recipients.values()]
        code = max(codes) if codes else None
        return Outcome(False, _permanent(code), code, short(f"recipient refused: {exc.recipients}"),
                       took())
    except smtplib.SMTPResponseException as exc:
        return Outcome(False, _permanent(exc.smtp_code), exc.smtp_code, short(exc), took())
    except smtplib.SMTPNotSupportedError as exc:
        # e.g. security = "starttls" against a server without STARTTLS: a config error.
        return Outcome(False, True, None, short(exc), took())
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(False, False, None, short(exc), took())
    return Outcome(True, False, 250, None, took())
