"""The daemon's configuration: one ``Settings`` from a TOML file plus ``KIOSK_*`` variables.

Precedence, highest first: keyword arguments, environment (``KIOSK_ADMIN_PORT=9000``,
nested with ``__`` as in ``KIOSK_BUSINESS_HOURS__START=09:00``), the TOML file, defaults.
A bad value stops start-up with a message that names the option and the allowed range,
because a cabinet that starts with a half-understood config is worse than one that stops.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from kiosk.errors import ConfigError
from kiosk.hardware_config import HardwareSettings
from kiosk.notify.settings import NotificationSettings

DEFAULT_CONFIG_FILE = Path("kiosk.toml")

_toml_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar("toml_path", default=None)

Port = Annotated[int, Field(ge=1, le=65535)]


class _Strict(BaseModel):
    """Sections reject unknown options so a typo is a start-up error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BusinessHours(_Strict):
    """When the cabinet opens to one badge; outside these hours K8 two-person opening applies."""

    start: dt.time = dt.time(8, 30)
    end: dt.time = Field(
        default=dt.time(18, 0),
        description='Closing time; "24:00" keeps the cabinet open until midnight (with '
                    'start "00:00" and every weekday: open round the clock).',
    )
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5],
        description="ISO weekdays that are working days (1 = Monday).",
    )
    holidays: list[dt.date] = Field(
        default_factory=list, description="Public holidays: closed although a weekday."
    )
    extra_workdays: list[dt.date] = Field(
        default_factory=list,
        description="Make-up working days (调休): open although a weekend day.",
    )

    @field_validator("end", mode="before")
    @classmethod
    def _midnight(cls, value: object) -> object:
        """"24:00" (ISO 8601's end of a day) is the last instant of the day: a time of day
        cannot say midnight at the end, and "23:59:59" left the day's last second closed,
        so a round-the-clock site asked for the duty manager once a night (K8)."""
        if isinstance(value, str) and value.strip() in ("24:00", "24:00:00"):
            return dt.time.max
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> BusinessHours:
        if self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self


class AuditSettings(_Strict):
    """Tamper-evident log options."""

    checkpoint_every: int = Field(
        default=256, ge=1, le=1_000_000,
        description="Sign a checkpoint every N events; verify requires one at each multiple.",
    )
    export_path: Path | None = Field(
        default=None,
        description="Folder (e.g. a mounted USB stick) the scheduler copies the signed "
                    "checkpoints to, for a verifier off the device.",
    )
    export_every_min: int = Field(
        default=60, ge=1, le=7 * 24 * 60,
        description="How often the scheduler exports to export_path (when the log moved).",
    )
    export_log: bool = Field(
        default=False, description="Export the events too (appended), not only checkpoints."
    )


class CabinetSettings(_Strict):
    """How the cabinet treats people at the screen; each bound is what a user can live with."""

    night_window_s: int = Field(
        default=60, ge=5, le=300, description="K8: the duty manager taps within this many seconds."
    )
    choose_timeout_s: int = Field(default=60, ge=10, le=600)
    cosign_timeout_s: int = Field(default=60, ge=10, le=600)
    take_timeout_s: int = Field(
        default=20, ge=5, le=120, description="Slot open this long for the key to be taken."
    )
    return_timeout_s: int = Field(default=30, ge=5, le=120)
    door_held_open_s: int = Field(default=120, ge=10, le=3600)
    slot_left_open_s: int = Field(default=30, ge=5, le=3600)
    phone_confirmation_required: bool = Field(
        default=True, description="K6: a proxy's first draw needs the owner's phone confirmation."
    )
    returner_tap_timeout_s: int = Field(
        default=20, ge=5, le=120,
        description="K4: after a key's fob is tapped, wait this long for the returner's badge.",
    )
    handover_tap_timeout_s: int = Field(
        default=120, ge=10, le=600,
        description="H1: the screen waits this long for the incoming keeper's badge tap.",
    )
    handover_valid_min: int = Field(
        default=30, ge=5, le=240,
        description="H1: a started handover can be accepted for this long, then it lapses.",
    )
    scan_interval_s: float = Field(
        default=0.1, ge=0.02, le=2.0,
        description="How often the slot sensors and timers are read. Shorter sees a key "
                    "leave sooner and costs bus traffic and CPU; a Pi Zero may want 0.2.",
    )


class ScheduleSettings(_Strict):
    """K9 jobs of the daemon's scheduler; times are local (``timezone``)."""

    enabled: bool = Field(default=True, description="Run the scheduler inside the daemon.")
    daily_count_at: dt.time = Field(
        default=dt.time(18, 15),
        description="K9: compare the slot sensors with the records and open loans.",
    )
    daily_report_at: dt.time = Field(
        default=dt.time(18, 30), description="K9: end-of-day report of keys drawn today still out."
    )
    report_language: Literal["zh", "en"] = Field(
        default="zh", description="Language the stored daily report is generated in."
    )
    escalate_supervisor_after_h: float = Field(
        default=2.0, ge=0.25, le=72,
        description="K9: an overdue key goes to the supervisor after this many hours.",
    )
    long_overdue_after_days: int = Field(
        default=3, ge=1, le=90, description="K9: 长期未归 after this many days past due."
    )
    due_reminder_min: int = Field(
        default=30, ge=0, le=1440,
        description="A loan due within this many minutes gets one loan.due_soon reminder "
        "(routed like any event); 0 turns reminders off.",
    )
    poll_s: float = Field(
        default=30.0, ge=1, le=600,
        description="How often the scheduler wakes to look for due jobs and overdue keys.",
    )

    @model_validator(mode="after")
    def _count_before_report(self) -> ScheduleSettings:
        if self.daily_count_at > self.daily_report_at:
            raise ValueError(
                f"daily_count_at {self.daily_count_at} must not be after daily_report_at "
                f"{self.daily_report_at}: the report lists the day's count"
            )
        return self


class SiteSettings(_Strict):
    """Whose cabinet this is: printed at the top of every report a supervisor signs."""

    company_name: str = Field(
        default="", max_length=100, description="The property company (物业公司), e.g. 百富物业服务有限公司."
    )
    building_name: str = Field(
        default="", max_length=100, description="The building or estate (项目 / 大厦), e.g. 百富国际大厦."
    )


DEFAULT_ALARM_OWNERS: dict[str, str] = {
    # the cabinet and its sensors
    "door_forced": "supervisor",
    "door_held_open": "custodian",
    "key_removed_unauthorised": "supervisor",
    "key_inserted_unexpectedly": "custodian",
    "slot_left_open": "custodian",
    "wrong_slot": "custodian",
    "lock_fault": "supervisor",
    "bus_fault": "supervisor",
    # the register
    "key_overdue": "custodian",
    "returned_by_other": "custodian",
    "key_missing": "supervisor",
    "key_unexpected": "custodian",
    "count_mismatch": "supervisor",
    # a person opened the cabinet with their duress PIN: silent, to the supervisor at once
    "duress": "supervisor",
}
"""F1: who owns each kind of alarm from the moment it is raised, until someone takes it."""

ALARM_OWNER_ROLES = frozenset(
    {"staff", "custodian", "dept_leader", "duty_manager", "supervisor", "admin", "auditor"}
)


class AlarmSettings(_Strict):
    """F1: every alarm has an owner the moment it is raised. ``owners`` maps an alarm kind to
    a role (the first active person with it; ``duty_manager``: the one on the roster then)
    or an admin-API account name (the person linked to it). Kinds not listed go to
    ``default_owner``; an owner that names nobody falls back to ``default_owner`` too."""

    owners: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,47}$")],
        Annotated[str, Field(min_length=1, max_length=64)],
    ] = Field(default_factory=dict, description="Alarm kind → role or account name.")
    default_owner: str = Field(default="supervisor", min_length=1, max_length=64)

    @field_validator("owners")
    @classmethod
    def _no_lifecycle_words(cls, value: dict[str, str]) -> dict[str, str]:
        steps = {"raised", "acknowledged", "assigned", "noted", "closed", "escalated"}
        bad = sorted(set(value) & steps)
        if bad:
            raise ValueError(f"{', '.join(bad)}: a step in an alarm's life, not an alarm kind")
        return value

    def table(self) -> dict[str, str]:
        """Kind → owner for every kind, the defaults overridden by the site's ``owners``;
        ``"*"`` is the fallback."""
        return {**DEFAULT_ALARM_OWNERS, **self.owners, "*": self.default_owner}


class PinSettings(_Strict):
    """A PIN as a second factor at the cabinet (README "PIN and duress"). A draw asks for
    the person's PIN when one of its keys is in ``key_groups``, the person has one of
    ``roles``, or it is after hours and ``after_hours`` is on. Nothing asks by default."""

    key_groups: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        default_factory=list, description="Key group codes whose draws need a PIN (e.g. MASTER).")
    roles: list[Annotated[str, Field(pattern=r"^[a-z_]{2,24}$")]] = Field(
        default_factory=list, description="Roles whose draws need a PIN (e.g. staff).")
    after_hours: bool = Field(default=False, description="Every draw after hours needs a PIN.")
    max_tries: int = Field(
        default=5, ge=3, le=10, description="Wrong PINs in a row that lock the card.")
    lockout_min: int = Field(
        default=15, ge=1, le=1440, description="How long a card stays locked after them.")
    set_window_min: int = Field(
        default=30, ge=5, le=7 * 24 * 60,
        description="After a reset (console/API), the person sets a new PIN at the cabinet "
                    "with their badge within this many minutes.")


class AdminTlsSettings(_Strict):
    """HTTPS for the admin API: passwords and bearer tokens must not cross the building
    network in clear. ``auto`` turns TLS on whenever the API listens beyond loopback."""

    mode: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="auto: TLS unless admin_host is a loopback address; on; off (warned).",
    )
    cert_file: Path | None = Field(
        default=None,
        description="PEM certificate (chain); unset: a self-signed one is made once in "
                    "DATA_DIR/tls/ and its SHA-256 fingerprint printed for pinning.",
    )
    key_file: Path | None = Field(default=None, description="PEM private key of cert_file.")

    @model_validator(mode="after")
    def _both_or_neither(self) -> AdminTlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both, or neither "
                             "for a self-signed certificate")
        return self


class FleetSettings(_Strict):
    """The link to a hub (issue 12, docs/fleet.md). Unset ``hub_url``: a cabinet on its own,
    exactly as before. Set: after ``kiosk fleet enrol`` the daemon ships its log up and
    pulls configuration down; decisions never wait on the hub either way."""

    hub_url: str | None = Field(
        default=None, pattern=r"^https?://",
        description="The hub's fleet endpoint, e.g. https://hub.example/hub/v1.")
    hub_ca_file: Path | None = Field(
        default=None, description="CA bundle (or the hub's own certificate) for its HTTPS.")
    poll_wait_s: float = Field(
        default=10.0, ge=0.0, le=60.0,
        description="Long-poll wait for configuration changes (the hub answers as soon as "
                    "one is made, so a revocation arrives within about half a second).")
    batch_size: int = Field(default=500, ge=1, le=2000,
                            description="Events per shipment to the hub.")
    hub_port: Port = Field(default=8600, description="`kiosk hub`: the port to serve on.")
    hub_host: str = Field(default="127.0.0.1", description="`kiosk hub`: the address to serve on.")
    clock_window_s: int = Field(
        default=300, ge=5, le=3600,
        description="`kiosk hub`: how far a cabinet's request time may be from the hub's.")


class Settings(BaseSettings):
    """Everything the daemon needs to start, validated with bounds."""

    model_config = SettingsConfigDict(
        env_prefix="KIOSK_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(default=Path("var"), description="Database, device key, backups.")
    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty means SQLite at DATA_DIR/kiosk.db."
    )
    database_busy_timeout_ms: int = Field(
        default=10_000, ge=50, le=60_000,
        description="SQLite: how long a write waits for another writer's lock before failing.",
    )
    cabinet_id: str = Field(default="cab-01", min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    cabinet_name: str = Field(default="百富国际大厦 客服中心钥匙柜", max_length=200)
    simulate: bool = Field(default=True, description="Drive the simulators instead of hardware.")
    demo_data: bool = Field(
        default=True,
        description="Simulate mode on an empty database: load the demo tower at start. False "
                    "(or `kiosk run --empty`): start with an empty register, the simulated "
                    "cabinet's one lock board of 16 slots only, to set a building up from "
                    "the console.",
    )
    timezone: str = "Asia/Shanghai"
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    cabinet: CabinetSettings = Field(default_factory=CabinetSettings)
    hardware: HardwareSettings = Field(default_factory=HardwareSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    site: SiteSettings = Field(default_factory=SiteSettings)
    fleet: FleetSettings = Field(default_factory=FleetSettings)
    alarms: AlarmSettings = Field(default_factory=AlarmSettings)
    pin: PinSettings = Field(default_factory=PinSettings)
    admin_host: str = "127.0.0.1"
    admin_port: Port = 8080
    admin_tls: AdminTlsSettings = Field(default_factory=AdminTlsSettings)
    admin_trusted_proxies: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For is believed (the "
                    "audited client address and the login limit per address). Empty: none, "
                    "the peer address is the client.",
    )
    kiosk_port: Port = 8081
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
            ) from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @model_validator(mode="after")
    def _real_hardware_has_locks(self) -> Settings:
        if not self.simulate and self.hardware.locks is None:
            raise ValueError("simulate = false needs a [hardware.locks] section")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def resolved_database_url(self) -> str:
        """The URL actually used: the configured one, or SQLite inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'kiosk.db').as_posix()}"

    @property
    def device_key_path(self) -> Path:
        return self.data_dir / "device_key.pem"


_SECRET_OPTIONS = frozenset({"password", "secret"})
"""Options whose rejected value is never echoed: a start-up error is logged."""


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in error["loc"]) or "(config)"
    msg = error["msg"]
    ctx = error.get("ctx") or {}
    bounds = [
        f"{k} {ctx[k]}" for k in ("ge", "gt", "le", "lt", "min_length", "max_length") if k in ctx
    ]
    allowed = f" (allowed: {', '.join(bounds)})" if bounds else ""
    secret = bool(error["loc"]) and str(error["loc"][-1]) in _SECRET_OPTIONS
    got = (
        f"; got {error['input']!r}"
        if "input" in error and not isinstance(error["input"], dict) and not secret
        else ""
    )
    return f"option '{loc}': {msg}{allowed}{got}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``config_file`` (or ``./kiosk.toml`` when present) and the environment.

    Raises ``ConfigError`` whose message names every bad option, its allowed range and the
    file it came from.
    """
    path = config_file
    if path is None and DEFAULT_CONFIG_FILE.is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    if path is not None:
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    token = _toml_path.set(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        where = f"{path} / KIOSK_* environment" if path else "KIOSK_* environment"
        lines = "\n  ".join(_describe(dict(e)) for e in exc.errors())
        raise ConfigError(f"invalid configuration ({where}):\n  {lines}") from None
    finally:
        _toml_path.reset(token)
