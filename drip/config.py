"""Settings from the environment and an optional TOML file.

Precedence: environment (`DRIP_*`, `SENDGRID_*`) > `drip.toml` (path in `DRIP_CONFIG`, else
`./drip.toml`) > demo defaults. Secrets (API keys, the signing key, SMTP password) are read from
the environment only; a TOML file that holds one is refused so it cannot end up in a repository.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from drip.errors import ConfigurationError

SECRET_KEYS = {"secret_key", "sendgrid_api_key", "smtp_password", "metrics_token", "bounce_imap_password"}


@dataclass(frozen=True)
class Clinic:
    """Who the emails come from: branding and the CAN-SPAM identification."""

    name: str = "Riverside Acupuncture & Wellness"
    address: str = "120 Harbor Street, Suite 4, Portland, ME 04101, USA"
    website: str = "https://riverside-clinic.example"
    phone: str = "(207) 555-0142"
    logo_url: str = ""
    booking_url: str = ""  # the call-to-action button on every email ("" for none)
    cta_label: str = "Book a visit"
    brand_color: str = "#2f6f6a"
    from_email: str = "care@riverside-clinic.example"
    from_name: str = "Riverside Acupuncture"
    reply_to: str = "frontdesk@riverside-clinic.example"
    timezone: str = "America/New_York"
    consent_text: str = (
        "I agree to receive educational emails from the clinic. "
        "I can unsubscribe at any time with one click."
    )
    consent_version: str = "2026-11"
    language: str = "en"  # patient pages and emails when a patient has no language of their own (drip/i18n.py)


@dataclass(frozen=True)
class Settings:
    clinic: Clinic = field(default_factory=Clinic)
    database_url: str = ""
    data_dir: Path = Path(".drip")
    outbox_dir: Path = Path("outbox")
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = field(default="", repr=False)  # secrets never appear in a repr or a log line
    backend: str = "outbox"  # outbox | smtp | sendgrid
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_starttls: bool = False
    smtp_timeout: float = 30.0
    # Parallel SMTP connections per worker (delivery/backends/smtp.py) and ESMTP PIPELINING where
    # the server offers it. 1 + false: one connection in lock-step, as before.
    smtp_connections: int = 4
    smtp_pipelining: bool = True
    sendgrid_api_key: str = field(default="", repr=False)
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_timeout: float = 20.0
    sendgrid_webhook_public_key: str = ""
    # Asynchronous bounces and complaints (delivery/bounces/): a VERP envelope sender per delivery
    # (bounces+d<id>-<hmac>@bounce_domain; DRIP_VERP=true uses the From domain), and the mailbox the
    # reports arrive in: IMAP (ssl | starttls | plain, plain only to loopback) and/or a maildir.
    bounce_domain: str = ""
    verp: bool = False
    bounce_maildir: str = ""
    bounce_imap_host: str = ""
    bounce_imap_port: int = 0  # 0: 993 for ssl, 143 otherwise
    bounce_imap_user: str = ""
    bounce_imap_password: str = field(default="", repr=False)
    bounce_imap_security: str = "ssl"
    bounce_imap_folder: str = "INBOX"
    bounce_poll_seconds: float = 300.0  # the worker polls the bounce mailbox this often (when one is set)
    bounce_soft_limit: int = 3  # soft bounces in a row that suppress an address
    tracking: bool = False
    frequency_cap: int = 1  # emails per subscriber per local day, across campaigns and newsletters
    batch_size: int = 0  # rows claimed per query; 0: by backend (delivery.dispatcher.claim_size)
    record_every: int = 50  # outcomes are recorded after this many sends (bounds resends after a crash)
    lease_seconds: int = 300
    max_attempts: int = 8
    pause_after_errors: int = 20
    tick_seconds: float = 5.0
    # Circuit breaker for a backend that is unwell (delivery/breaker.py): the first hold, growing
    # (x2, jittered) with each failure in a row up to the max; then one probe message.
    breaker_base_seconds: float = 5.0
    breaker_max_seconds: float = 300.0
    # The provider's sending limits, shared by all workers through the database
    # (delivery/ratelimit.py): "30/minute,10000/day", or a preset: workspace, m365, ses. "" = none.
    rate_limits: str = ""
    db_busy_timeout: float = 30.0  # how long one SQLite write waits for the lock before retrying
    db_retry_max_seconds: float = 5.0  # the longest pause between retries while the database is unavailable
    signup_campaign: str = "onboarding"  # campaign a confirmed web sign-up is enrolled in (slug)
    signup_tag: str = "new-patients"  # tag a confirmed web sign-up gets ("" for none)
    # Proxies whose X-Forwarded-For/-Proto are believed (IPs or CIDRs, comma-separated). Default
    # none: anything on the host could otherwise claim any client address past the rate limits.
    trusted_proxies: str = ""
    webhook_allow_private: bool = False  # outbound webhooks to private/loopback addresses (off: SSRF)
    webhook_timeout: float = 5.0  # seconds per webhook POST (the webhook job's own threads, never sending's)
    webhook_concurrency: int = 8  # webhook POSTs in flight per worker
    webhook_nice: int = 10  # the webhook threads' (and `drip webhooks run`'s) nice value: sending comes first for the CPU
    # Staff page counts (delivery/counts.py): counted on each page view below this many ledger rows;
    # above, read from stats_cache, which the worker recounts every stats_refresh_seconds.
    stats_live_rows: int = 200_000
    stats_refresh_seconds: float = 300.0
    retention_days: int = 0  # finished delivery rows and provider events older than this are deleted (0: kept)
    worker_stale_seconds: float = 120.0  # no heartbeat for this long: /healthz and staff pages say sending stopped
    metrics_token: str = field(default="", repr=False)  # bearer token for /metrics off loopback
    log_format: str = "text"  # text | json (one JSON object per line, for log shippers)
    # Clinician sign-off (campaigns/signoff.py): editors' changes wait for an approver. A one-person
    # clinic turns it off (DRIP_REQUIRE_SIGNOFF=false).
    require_signoff: bool = True

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'drip.sqlite3'}"

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **changes)


_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False, "": False}


def _coerce(name: str, value: Any, like: Any) -> Any:
    if isinstance(like, bool):
        if isinstance(value, bool):
            return value
        try:
            return _BOOL[str(value).strip().lower()]
        except KeyError:
            raise ConfigurationError(f"setting {name}: expected true/false, got {value!r}") from None
    if isinstance(like, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"setting {name}: expected a whole number, got {value!r}") from None
    if isinstance(like, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"setting {name}: expected a number, got {value!r}") from None
    if isinstance(like, Path):
        return Path(value)
    return str(value)


def load_settings(env: Mapping[str, str] | None = None, toml_path: Path | None = None) -> Settings:
    """Build the settings once at start-up; bad values fail here, not halfway through a send."""
    env = os.environ if env is None else env
    base = Settings()
    values: dict[str, Any] = {}
    clinic_values: dict[str, Any] = {}

    path = toml_path or Path(env.get("DRIP_CONFIG", "drip.toml"))
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc
        for key, value in data.items():
            if key == "clinic":
                clinic_values.update(value)
            elif key in SECRET_KEYS:
                raise ConfigurationError(f"{path}: {key} must come from the environment, not a file")
            elif hasattr(base, key):
                values[key] = _coerce(key, value, getattr(base, key))
            else:
                raise ConfigurationError(f"{path}: unknown setting {key!r}")

    for key in base.__dataclass_fields__:
        if key == "clinic":
            continue
        env_name = "DRIP_" + key.upper()
        if env_name in env:
            values[key] = _coerce(env_name, env[env_name], getattr(base, key))
    if "SENDGRID_API_KEY" in env:
        values["sendgrid_api_key"] = env["SENDGRID_API_KEY"]
    if "SENDGRID_WEBHOOK_PUBLIC_KEY" in env:
        values["sendgrid_webhook_public_key"] = env["SENDGRID_WEBHOOK_PUBLIC_KEY"]
    for key in Clinic.__dataclass_fields__:
        env_name = "DRIP_CLINIC_" + key.upper()
        if env_name in env:
            clinic_values[key] = env[env_name]

    unknown = set(clinic_values) - set(Clinic.__dataclass_fields__)
    if unknown:
        raise ConfigurationError(f"[clinic]: unknown setting(s) {', '.join(sorted(unknown))}")
    settings = replace(base, clinic=replace(base.clinic, **clinic_values), **values)
    if settings.backend not in {"outbox", "smtp", "sendgrid"}:
        raise ConfigurationError(f"DRIP_BACKEND: unknown backend {settings.backend!r} (outbox, smtp, sendgrid)")
    if settings.log_format not in {"text", "json"}:
        raise ConfigurationError(f"DRIP_LOG_FORMAT: unknown format {settings.log_format!r} (text, json)")
    if not 0 <= settings.webhook_nice <= 19:
        raise ConfigurationError("DRIP_WEBHOOK_NICE must be 0 (normal priority) to 19 (lowest)")
    if settings.frequency_cap < 1:
        raise ConfigurationError("DRIP_FREQUENCY_CAP must be at least 1")
    if settings.stats_live_rows < 0:
        raise ConfigurationError("DRIP_STATS_LIVE_ROWS must be a number of ledger rows (0: always from the cache)")
    if settings.stats_refresh_seconds < 10:
        raise ConfigurationError("DRIP_STATS_REFRESH_SECONDS must be at least 10")
    if settings.batch_size < 0:
        raise ConfigurationError("DRIP_BATCH_SIZE must be a number of rows (or 0: chosen by backend)")
    from delivery.ratespec import parse_limits

    parse_limits(settings.rate_limits)  # a typo fails at start-up, not as "no limit"
    parse_trusted_proxies(settings.trusted_proxies)  # a typo fails at start-up, not as "no proxy"
    from drip.i18n import LANGUAGES

    if settings.clinic.language not in LANGUAGES:
        raise ConfigurationError(
            f"DRIP_CLINIC_LANGUAGE: unsupported language {settings.clinic.language!r} ({', '.join(LANGUAGES)})")
    booking = settings.clinic.booking_url.strip()
    if booking and not re.fullmatch(r"https?://[^\s<>\"']+", booking):
        raise ConfigurationError("DRIP_CLINIC_BOOKING_URL must be an http(s) address, e.g. https://clinic.example/book")
    if settings.bounce_imap_security not in {"ssl", "starttls", "plain"}:
        raise ConfigurationError(
            f"DRIP_BOUNCE_IMAP_SECURITY: unknown value {settings.bounce_imap_security!r} (ssl, starttls, plain)")
    if settings.bounce_soft_limit < 1:
        raise ConfigurationError("DRIP_BOUNCE_SOFT_LIMIT must be at least 1")
    if settings.record_every < 1:
        settings = replace(settings, record_every=50)
    return settings


def parse_trusted_proxies(value: str) -> list[str]:
    """`DRIP_TRUSTED_PROXIES` ("127.0.0.1, 10.0.0.0/8") as a list; anything not an IP or network is refused."""
    import ipaddress

    proxies = [part.strip() for part in value.split(",") if part.strip()]
    for item in proxies:
        try:
            ipaddress.ip_network(item, strict=False) if "/" in item else ipaddress.ip_address(item)
        except ValueError:
            raise ConfigurationError(
                f"DRIP_TRUSTED_PROXIES: {item!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)"
            ) from None
    return proxies


def secret_key(settings: Settings) -> str:
    """The signing key for tokens and sessions.

    From `DRIP_SECRET_KEY`; without it (the embedded demo) a random key is made once and kept in
    the data folder, which is git-ignored. Never a constant in the code.
    """
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return key
