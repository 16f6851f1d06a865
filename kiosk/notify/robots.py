"""WeCom (企业微信) and DingTalk (钉钉) group robots: the message formats their APIs document.

Both take a JSON POST to the robot's webhook address and answer HTTP 200 with
``{"errcode": 0, "errmsg": "ok"}`` on success; a non-zero ``errcode`` is a failure even
with HTTP 200.

- **WeCom**: ``POST {url}?key={key}`` with ``{"msgtype": "markdown", "markdown":
  {"content": …}}`` (at most 4096 bytes) or ``{"msgtype": "text", "text": {"content": …,
  "mentioned_mobile_list": […]}}`` (at most 2048 bytes).
- **DingTalk**: ``POST {url}?access_token={token}[&timestamp={ms}&sign={sign}]`` with
  ``{"msgtype": "markdown", "markdown": {"title": …, "text": …}, "at": {"atMobiles": […],
  "isAtAll": false}}`` or ``{"msgtype": "text", "text": {"content": …}, "at": …}``. A robot
  with 加签 (a ``SEC…`` secret) needs ``timestamp`` (Unix milliseconds, within an hour of
  DingTalk's clock) and ``sign = urlencode(base64(HMAC-SHA256(key=secret,
  msg=f"{timestamp}\\n{secret}")))``.

The body is built from the same ``Message`` as the email (subject, bilingual text, the
console link); values that came from the register are markdown-escaped so a name cannot
inject a link. Errors that a retry will not fix (a wrong key or token, a bad signature, a
keyword the robot does not allow) are permanent; rate limits and "system busy" are retried.
The key and the token travel in the address: no error message keeps the address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from kiosk.notify.message import Message
from kiosk.notify.outcome import Outcome, short
from kiosk.notify.settings import DingTalkSettings, WeComSettings
from kiosk.notify.webhook import USER_AGENT, classify

WECOM_MARKDOWN_MAX = 4096
WECOM_TEXT_MAX = 2048
DINGTALK_MAX = 18000
WECOM_RETRIED = frozenset({-1, 45009, 45033})
"""System busy; API rate limit; too many concurrent calls."""
DINGTALK_RETRIED = frozenset({-1, 130101, 130102})
"""System busy; sending too fast; too many messages this hour."""
_MD_NEUTRAL = str.maketrans({"<": "＜", ">": "＞", "`": "ˋ"})


def md(text: str) -> str:
    """``text`` safe in robot markdown: no link, HTML or code can be injected by a name.

    The robots' markdown has no reliable backslash escape (WeCom shows the backslash), so
    what makes a link (``](`` and ``]:``), a tag or code becomes its full-width form, which
    reads the same to a person; a plain ``[cab-01]`` stays as it is."""
    return text.replace("](", "］(").replace("]:", "］:").translate(_MD_NEUTRAL)


def fit(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, with an ellipsis when cut."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "…"


def _markdown(message: Message) -> str:
    """Subject as a heading, the body as quoted lines, the console link last."""
    body = message.text
    if message.link and body.rstrip().endswith(message.link):
        body = body.rstrip().rsplit("\n", 1)[0]  # the link gets its own line below
    lines = [f"**{md(message.subject)}**", ""]
    lines += [f"> {md(line)}" if line.strip() else "" for line in body.rstrip().splitlines()]
    if message.link:
        label = f"{message.link_zh} {message.link_en}" if message.link_zh else message.link
        lines += ["", f"[{md(label)}]({message.link})"]
    return "\n".join(lines)


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"),
                      sort_keys=True).encode("utf-8")


# ------------------------------------------------------------------------------ WeCom
def wecom_body(robot: WeComSettings, message: Message, *, mobiles: Sequence[str] = ()) -> bytes:
    if robot.msgtype == "text":
        text: dict[str, Any] = {"content": fit(message.subject + "\n\n" + message.text,
                                               WECOM_TEXT_MAX)}
        if mobiles:
            text["mentioned_mobile_list"] = list(mobiles)
        return _json({"msgtype": "text", "text": text})
    return _json({"msgtype": "markdown",
                  "markdown": {"content": fit(_markdown(message), WECOM_MARKDOWN_MAX)}})


def wecom_url(robot: WeComSettings) -> str:
    query = urllib.parse.urlencode({"key": robot.key.get_secret_value()})
    return f"{str(robot.url).rstrip('?')}?{query}"


# --------------------------------------------------------------------------- DingTalk
def dingtalk_sign(secret: str, timestamp_ms: int | str) -> str:
    """DingTalk's 加签: urlencode(base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")))."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(),
                   hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(mac))


def dingtalk_url(robot: DingTalkSettings, *, timestamp_ms: int) -> str:
    """The robot address with access_token, and timestamp and sign when the robot signs."""
    query = "access_token=" + urllib.parse.quote_plus(robot.access_token.get_secret_value())
    if robot.secret is not None:
        sign = dingtalk_sign(robot.secret.get_secret_value(), timestamp_ms)
        query += f"&timestamp={timestamp_ms}&sign={sign}"  # sign is already url-encoded
    return f"{str(robot.url).rstrip('?')}?{query}"


def dingtalk_body(robot: DingTalkSettings, message: Message, *,
                  mobiles: Sequence[str] = ()) -> bytes:
    at = {"atMobiles": list(mobiles), "isAtAll": False}
    mention = " ".join(f"@{m}" for m in mobiles)
    if robot.msgtype == "text":
        content = message.subject + "\n\n" + message.text + (f"\n{mention}" if mention else "")
        return _json({"msgtype": "text", "text": {"content": fit(content, DINGTALK_MAX)},
                      "at": at})
    text = _markdown(message) + (f"\n\n{mention}" if mention else "")
    return _json({"msgtype": "markdown", "at": at,
                  "markdown": {"title": message.subject[:64], "text": fit(text, DINGTALK_MAX)}})


# ------------------------------------------------------------------------------ sending
def _post(url: str, body: bytes, *, timeout: float, retried: frozenset[int]) -> Outcome:
    import httpx

    started = time.monotonic()
    try:
        response = httpx.post(url, content=body, timeout=timeout, follow_redirects=False,
                              headers={"Content-Type": "application/json; charset=utf-8",
                                       "User-Agent": USER_AGENT})
    except httpx.HTTPError as exc:
        # the exception text can carry the URL, and the URL carries the robot's key
        return Outcome(False, False, None, short(type(exc).__name__),
                       int((time.monotonic() - started) * 1000))
    took = int((time.monotonic() - started) * 1000)
    ok, permanent = classify(response.status_code)
    if not ok:
        return Outcome(False, permanent, response.status_code,
                       short(f"HTTP {response.status_code}: {response.text[:200]}"), took)
    try:
        answer = response.json()
        code = int(answer.get("errcode", 0))
    except (ValueError, AttributeError, TypeError):
        return Outcome(False, False, response.status_code,
                       short(f"not a robot answer: {response.text[:200]}"), took)
    if code == 0:
        return Outcome(True, False, response.status_code, None, took)
    return Outcome(False, code not in retried, response.status_code,
                   short(f"errcode {code}: {answer.get('errmsg', '')}"), took)


def send_wecom(robot: WeComSettings, message: Message, *,
               mobiles: Sequence[str] = ()) -> Outcome:
    """POST one message to a WeCom group robot (blocking: a worker thread calls it)."""
    return _post(wecom_url(robot), wecom_body(robot, message, mobiles=mobiles),
                 timeout=robot.timeout_s, retried=WECOM_RETRIED)


def send_dingtalk(robot: DingTalkSettings, message: Message, *, timestamp_ms: int,
                  mobiles: Sequence[str] = ()) -> Outcome:
    """POST one message to a DingTalk group robot, signed at ``timestamp_ms`` if it signs."""
    return _post(dingtalk_url(robot, timestamp_ms=timestamp_ms),
                 dingtalk_body(robot, message, mobiles=mobiles),
                 timeout=robot.timeout_s, retried=DINGTALK_RETRIED)
