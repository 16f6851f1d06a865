"""The ``[notifications]`` section: SMTP server, named webhooks, and routes per event type.

Every option is strict and bounded like the rest of the configuration; the cross-field rules
(a route naming an unknown webhook, email routes without an SMTP server, a route for the
dispatcher's own ``notification.*`` events) are start-up errors that name the option,
because a notification that silently never leaves is worse than a daemon that refuses to
start. Secrets are ``SecretStr``: they never appear in a repr, a log line or the database.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
SECRET_MIN, SECRET_MAX = 16, 256
RESERVED_PREFIX = "notification."
"""The dispatcher's own events: never routed, so a failing route cannot feed itself."""


def check_address(value: str) -> str:
    """A plain ``local@domain`` address: no display name, no spaces, no second ``@``."""
    if not _ADDRESS.match(value) or ".." in value:
        raise ValueError(f"{value!r} is not an email address (expected name@example.com)")
    return value


EmailAddress = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(check_address)]
WebhookName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]
EventPattern = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_.*?\[\]!-]+$"),
    Field(description="An event type or an fnmatch pattern: alarm.*, report.generated, *"),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpSettings(_Strict):
    """The mail server the cabinet hands its email to (the site's relay or a provider)."""

    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:_-]+$")
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = Field(
        default="starttls",
        description="none: plain SMTP (a relay on the LAN); starttls: upgrade on port 587; "
        "tls: implicit TLS on port 465.",
    )
    username: str | None = Field(default=None, min_length=1, max_length=254)
    password: SecretStr | None = Field(
        default=None,
        description="Better set as KIOSK_NOTIFICATIONS__SMTP__PASSWORD than in the file.",
    )
    from_address: EmailAddress
    timeout_s: float = Field(default=15.0, gt=0, le=120)

    @model_validator(mode="after")
    def _login_complete(self) -> SmtpSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password are set together (or neither)")
        return self


class WebhookSettings(_Strict):
    """One receiver: its URL and the shared secret the body is signed with (HMAC-SHA256)."""

    url: HttpUrl
    secret: SecretStr = Field(description=f"{SECRET_MIN}..{SECRET_MAX} characters, shared with the receiver.")
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("secret")
    @classmethod
    def _secret_length(cls, value: SecretStr) -> SecretStr:
        # Checked here rather than with min_length so the message speaks of characters and
        # no error path ever echoes the secret itself.
        n = len(value.get_secret_value())
        if not SECRET_MIN <= n <= SECRET_MAX:
            raise ValueError(f"the secret must be {SECRET_MIN} to {SECRET_MAX} characters, not {n}")
        return value


def _robot_secret(value: SecretStr, what: str, low: int, high: int) -> SecretStr:
    n = len(value.get_secret_value())
    if not low <= n <= high or any(c.isspace() for c in value.get_secret_value()):
        raise ValueError(f"the {what} must be {low} to {high} characters without spaces, not {n}")
    return value


class WeComSettings(_Strict):
    """A WeCom (企业微信) group robot: its webhook key, the address of the robot API."""

    key: SecretStr = Field(
        description="The robot's key (the key=… of its webhook address). Better set as "
        "KIOSK_NOTIFICATIONS__WECOM__NAME__KEY than in the file.",
    )
    url: HttpUrl = Field(
        default=HttpUrl("https://qyapi.weixin.qq.com/cgi-bin/webhook/send"),
        description="The robot API without ?key= (change it only for a proxy).",
    )
    msgtype: Literal["markdown", "text"] = Field(
        default="markdown",
        description="markdown: formatted, a link to click; text: plain, and can @-mention "
        "the borrower by mobile number on a due-soon reminder.",
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("key")
    @classmethod
    def _key_length(cls, value: SecretStr) -> SecretStr:
        return _robot_secret(value, "key", 8, 128)


class DingTalkSettings(_Strict):
    """A DingTalk (钉钉) group robot: access token and, for 加签 robots, the signing secret."""

    access_token: SecretStr = Field(description="The access_token=… of the robot's address.")
    secret: SecretStr | None = Field(
        default=None,
        description="The robot's 加签 secret (SEC…): each request then carries timestamp and "
        "sign. Better set as KIOSK_NOTIFICATIONS__DINGTALK__NAME__SECRET.",
    )
    url: HttpUrl = Field(
        default=HttpUrl("https://oapi.dingtalk.com/robot/send"),
        description="The robot API without the query (change it only for a proxy).",
    )
    msgtype: Literal["markdown", "text"] = "markdown"
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("access_token")
    @classmethod
    def _token_length(cls, value: SecretStr) -> SecretStr:
        return _robot_secret(value, "access_token", 8, 256)

    @field_validator("secret")
    @classmethod
    def _secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _robot_secret(value, "secret", 8, 256)


class RouteSettings(_Strict):
    """Events whose type matches one of ``events`` go to every address, webhook and robot
    listed."""

    events: list[EventPattern] = Field(min_length=1)
    email: list[EmailAddress] = Field(default_factory=list)
    webhooks: list[WebhookName] = Field(default_factory=list)
    wecom: list[WebhookName] = Field(default_factory=list)
    dingtalk: list[WebhookName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_target_no_loop(self) -> RouteSettings:
        if not (self.email or self.webhooks or self.wecom or self.dingtalk):
            raise ValueError(
                "a route needs at least one email address, webhook, wecom or dingtalk robot"
            )
        for pattern in self.events:
            if pattern.startswith(RESERVED_PREFIX):
                raise ValueError(
                    f"events: {pattern!r}: notification.* events are never routed "
                    "(a failing route would notify about itself)"
                )
        return self


class NotificationSettings(_Strict):
    """Email and webhook notifications; off unless at least one route is configured."""

    enabled: bool = Field(default=True, description="Run the dispatcher when routes exist.")
    poll_s: float = Field(
        default=5.0, ge=0.1, le=600,
        description="How often the dispatcher looks for new events and due retries.",
    )
    max_attempts: int = Field(
        default=8, ge=1, le=50, description="Attempts per delivery before it is failed."
    )
    backoff_initial_s: float = Field(
        default=30.0, ge=0.1, le=3600, description="Wait after the first failed attempt."
    )
    backoff_max_s: float = Field(
        default=3600.0, ge=1, le=86_400, description="Cap of the doubling wait between attempts."
    )
    smtp: SmtpSettings | None = None
    webhooks: dict[WebhookName, WebhookSettings] = Field(default_factory=dict)
    wecom: dict[WebhookName, WeComSettings] = Field(default_factory=dict)
    dingtalk: dict[WebhookName, DingTalkSettings] = Field(default_factory=dict)
    routes: list[RouteSettings] = Field(default_factory=list)
    console_base_url: HttpUrl | None = Field(
        default=None,
        description="Where people open the web console, e.g. https://cabinet.tower.example:8443. "
        "Messages then carry links such as {base}/console/approvals/{id}.",
    )

    @model_validator(mode="after")
    def _routes_name_known_targets(self) -> NotificationSettings:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError(
                f"backoff_initial_s {self.backoff_initial_s} must not exceed backoff_max_s "
                f"{self.backoff_max_s}"
            )
        for i, route in enumerate(self.routes):
            for field_name, defined in (("webhooks", self.webhooks), ("wecom", self.wecom),
                                        ("dingtalk", self.dingtalk)):
                for name in getattr(route, field_name):
                    if name not in defined:
                        known = ", ".join(sorted(defined)) or "none defined"
                        raise ValueError(
                            f"routes[{i}].{field_name}: unknown {field_name.rstrip('s')} "
                            f"{name!r} (defined in [notifications.{field_name}.*]: {known})"
                        )
            if route.email and self.smtp is None:
                raise ValueError(
                    f"routes[{i}].email: email routes need a [notifications.smtp] section"
                )
        return self

    @property
    def console_base(self) -> str | None:
        """The console's base URL without a trailing slash, or None."""
        return str(self.console_base_url).rstrip("/") if self.console_base_url else None

    @property
    def active(self) -> bool:
        """Whether the daemon runs the dispatcher at all."""
        return self.enabled and bool(self.routes)
