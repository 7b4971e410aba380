"""Settings of summitbot, read from the environment or a ``.env`` file.

There is no module-level instance: call :func:`load_settings` where the
application is composed, so tests and tools can build their own.
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config.languages import SUPPORTED_LANGUAGES

DATASET_DIR = Path(__file__).resolve().parent / "dataset"
TELEGRAM_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_DELIVERY_MAX_IN_FLIGHT = 16


def default_database_url() -> str:
    """SQLite in the per-user data directory (e.g. ~/.local/share/summitbot)."""
    data_dir = Path(platformdirs.user_data_dir("summitbot", appauthor=False))
    return f"sqlite+aiosqlite:///{data_dir / 'summitbot.sqlite3'}"


class Settings(BaseSettings):
    """Everything an operator can configure. See the configuration table in docs/deployment.md."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = None
    database_url: str = Field(default_factory=default_database_url)
    telegram_base_url: str = TELEGRAM_BASE_URL
    operator_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    default_language: str = "en"
    default_timezone: str = "Asia/Almaty"
    dataset_dir: Path = DATASET_DIR
    log_level: str = "INFO"
    # Reminders: how often the dispatcher sweeps for due deliveries (it also wakes
    # up exactly at the next due instant), and how it sends.
    reminder_sweep_seconds: float = Field(default=15.0, gt=0)
    delivery_rate_per_second: float = Field(default=25.0, gt=0)
    delivery_rate_limit: bool = True
    delivery_max_attempts: int = Field(default=5, ge=1)
    delivery_lease_seconds: float = Field(default=300.0, gt=0)
    # Messages sent at once, each until its outcome is recorded: what a crash can repeat.
    # Throughput is at most this many per round trip to Telegram (16 / 50 ms = 320/s).
    # Unset: enough for the delivery rate at 250 ms round trips, and at least 16
    # (``bot.delivery.dispatcher.messages_in_flight``).
    delivery_max_in_flight: int | None = Field(default=None, ge=1, le=1024)
    # The ledger keeps finished deliveries (sent, skipped, failed) this many days, then
    # keeps only their counts per day (storage/retention.py). At least a week: /stats
    # counts the last 7 days from the rows themselves.
    delivery_retention_days: int = Field(default=180, ge=7)
    # Updates handled at once (each chat's still one at a time, in order); 1 handles
    # them one after another, as python-telegram-bot does by default.
    concurrent_updates: int = Field(default=64, ge=1, le=1024)
    # …and while a fan-out is being sent, so that the senders keep their pace.
    concurrent_updates_during_fanout: int = Field(default=4, ge=1, le=1024)
    # Abuse: updates one user may send per minute; how long identical read-only
    # requests are answered from a cache.
    requests_per_minute: int = Field(default=30, ge=1)
    reply_cache_seconds: float = Field(default=30.0, ge=0)
    # Transport to the Bot API: aiohttp (fast, the default) or PTB's own HTTPX.
    telegram_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    # Paid broadcasts (Bot API allow_paid_broadcast): up to 1000 messages/s, for Stars.
    # Sent at 950/s: messages reach Telegram unevenly, and paced at exactly its limit a
    # few are refused with 429.
    allow_paid_broadcast: bool = False
    paid_broadcast_rate_per_second: float = Field(default=950.0, gt=0)
    # Webhook mode (``summitbot webhook``): the public HTTPS URL Telegram posts to, the
    # secret it sends back in X-Telegram-Bot-Api-Secret-Token, and where to listen.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(default=8080, ge=0, le=65535)
    webhook_path: str = "/telegram"
    webhook_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # The Mini App (bot/webapp, docs/webapp.md): its public HTTPS address (unset: the
    # origin of WEBHOOK_URL + /app/), its short name at @BotFather for t.me links from
    # groups, how long Telegram's signed initData is accepted, and where
    # ``summitbot webapp`` listens when it serves the app alone.
    webapp_url: str | None = None
    webapp_short_name: str | None = None
    webapp_auth_max_age_seconds: int = Field(default=86_400, ge=60)
    webapp_host: str = "127.0.0.1"
    webapp_port: int = Field(default=8090, ge=0, le=65535)
    # Operations: JSON log lines for collectors; how long a stop may take (SIGTERM).
    log_format: Literal["text", "json"] = "text"
    shutdown_timeout_seconds: float = Field(default=20.0, gt=0)
    # Sources the bot follows (iCalendar feeds, data files over HTTPS): how often the job
    # looks for sources due a poll, and the limits of one fetch. SOURCES_ALLOW_LOCAL lets
    # a source be http:// or on a loopback or private address: tests and development
    # only, never in production (a URL from a chat could then reach the internal network).
    sources_allow_local: bool = False
    source_poll_check_seconds: float = Field(default=60.0, gt=0)
    source_timeout_seconds: float = Field(default=20.0, gt=0)
    source_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)

    @field_validator("operator_ids", mode="before")
    @classmethod
    def _parse_operator_ids(cls, value: Any) -> Any:
        # "1, 2 3" in the environment; a list when built in code.
        if isinstance(value, str):
            parts = value.replace(",", " ").split()
            try:
                return frozenset(int(part) for part in parts)
            except ValueError as exc:
                raise ValueError("OPERATOR_IDS must be Telegram user ids (numbers)") from exc
        return value

    @field_validator("default_language")
    @classmethod
    def _check_language(cls, value: str) -> str:
        if value not in SUPPORTED_LANGUAGES:
            raise ValueError(f"DEFAULT_LANGUAGE must be one of {', '.join(SUPPORTED_LANGUAGES)}")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"DEFAULT_TIMEZONE {value!r} is not an IANA time zone") from exc
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram allows 1-256 characters A-Z, a-z, 0-9, _ and -; a short one could be
        # guessed (and would be blotted out of every log line that happens to contain it).
        if value is not None:
            secret = value.get_secret_value()
            if not re.fullmatch(r"[A-Za-z0-9_-]{32,256}", secret):
                raise ValueError(
                    "WEBHOOK_SECRET must be 32-256 characters: letters, digits, _ and - "
                    "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        return value

    @field_validator("webhook_path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.startswith("/") or value in {"/healthz", "/readyz", "/metrics"}:
            raise ValueError("WEBHOOK_PATH must start with / and not be a health or metrics path")
        return value

    @field_validator("webapp_url")
    @classmethod
    def _check_webapp_url(cls, value: str | None) -> str | None:
        # Telegram opens only HTTPS Mini Apps; http:// is for a local ``summitbot webapp``.
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("WEBAPP_URL must be an https:// address such as https://x.org/app/")
        return value

    @field_validator("webapp_short_name")
    @classmethod
    def _check_short_name(cls, value: str | None) -> str | None:
        # @BotFather allows 3-30 letters, digits and underscores.
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_]{3,30}", value):
            raise ValueError("WEBAPP_SHORT_NAME must be 3-30 letters, digits or _")
        return value

    @field_validator("telegram_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


def webapp_url(settings: Settings) -> str | None:
    """The Mini App's address: ``WEBAPP_URL``, else ``/app/`` on ``WEBHOOK_URL``'s origin."""
    if settings.webapp_url:
        return settings.webapp_url
    if settings.webhook_url:
        found = re.match(r"(https://[^/?#]+)", settings.webhook_url)
        if found:
            return f"{found.group(1)}/app/"
    return None


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (and ``.env``), with explicit overrides."""
    return Settings(**overrides)
