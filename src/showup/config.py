"""Typed settings, read from ``SHOWUP_*`` environment variables and validated at start.

Every setting is listed with its variable and default in README.md ("Configuration").
Durations accept seconds (``300``) or ISO 8601 (``PT5M``).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import socket
from datetime import timedelta
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SECONDS = re.compile(r"\d+(\.\d+)?")


class ConfigError(Exception):
    """A setting is missing or invalid; the message says which and how to fix it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOWUP_", extra="ignore")

    # Storage
    data_dir: Path = Field(default=Path("showup-data"))
    database_url: str | None = None
    master_key: SecretStr | None = None

    # HTTP API
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    public_url: str | None = None

    # Provider endpoints: pointing at real Google or at the emulator is a setting.
    google_api_url: str = "https://www.googleapis.com/calendar/v3"
    google_token_url: str = "https://oauth2.googleapis.com/token"
    microsoft_graph_url: str = "https://graph.microsoft.com/v1.0"
    microsoft_login_url: str = "https://login.microsoftonline.com"

    # Sync
    sync_window_past: timedelta = timedelta(days=1)
    sync_window_future: timedelta = timedelta(days=28)
    poll_interval: timedelta = timedelta(minutes=5)
    deleted_retention: timedelta = timedelta(days=60)
    sync_concurrency_per_provider: int = Field(default=8, ge=1, le=256)
    sync_page_size: int = Field(default=250, ge=1, le=2500)
    retry_backoff_base: timedelta = timedelta(seconds=2)
    retry_backoff_max: timedelta = timedelta(minutes=5)
    http_timeout: timedelta = timedelta(seconds=30)

    # Worker
    lease_duration: timedelta = timedelta(minutes=2)
    worker_idle_poll: timedelta = timedelta(seconds=1)
    worker_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    # ``showup worker`` runs this many worker processes (``--processes`` overrides it).
    worker_processes: int = Field(default=1, ge=1, le=64)

    # Outbound URLs (tenant webhooks): loopback http only for development.
    allow_http_loopback_webhooks: bool = False
    allow_private_webhook_targets: bool = False

    # Webhook delivery (Standard Webhooks: 15-30 s timeouts, retries over about 3 days)
    webhook_concurrency: int = Field(default=16, ge=1, le=1024)
    webhook_timeout: timedelta = timedelta(seconds=15)
    webhook_retry_base: timedelta = timedelta(seconds=5)
    webhook_retry_max: timedelta = timedelta(hours=12)
    webhook_give_up_after: timedelta = timedelta(days=3)
    webhook_rotation_grace: timedelta = timedelta(hours=24)
    # Finished messages (every delivery delivered, failed or cancelled) are purged with
    # their deliveries and attempts this long after their last delivery ended.
    webhook_retention: timedelta = timedelta(days=30)

    # Bots (bots/, launchers/): when to join and how long launching may take
    bot_lead_time: timedelta = timedelta(minutes=2)
    bot_dispatch_deadline: timedelta = timedelta(minutes=5)
    bot_dispatch_concurrency: int = Field(default=16, ge=1, le=1024)
    bot_retry_base: timedelta = timedelta(seconds=5)
    bot_retry_max: timedelta = timedelta(minutes=1)
    bot_launch_timeout: timedelta = timedelta(seconds=10)

    # Push notifications (push/; PROTOCOLS §1.5): channels need SHOWUP_PUBLIC_URL
    push_safety_interval: timedelta = timedelta(hours=24)
    push_channel_ttl: timedelta = timedelta(days=7)
    push_renew_margin: timedelta = timedelta(days=1)
    push_allow_http: bool = False
    push_concurrency: int = Field(default=4, ge=1, le=256)
    push_retry_base: timedelta = timedelta(minutes=1)
    push_retry_max: timedelta = timedelta(hours=1)
    push_rate_burst: int = Field(default=10, ge=1, le=10000)
    push_rate_interval: timedelta = timedelta(seconds=6)

    log_level: str = "INFO"

    @field_validator("*", mode="before")
    @classmethod
    def _seconds(cls, v: object, info: ValidationInfo) -> object:
        """Durations also take plain seconds (``300``, ``0.5``), as documented; pydantic
        alone reads a number in a string (every environment variable) as an error."""
        if (
            isinstance(v, str)
            and info.field_name is not None
            and cls.model_fields[info.field_name].annotation is timedelta
            and _SECONDS.fullmatch(v.strip())
        ):
            return timedelta(seconds=float(v))
        return v

    @field_validator(
        "public_url",
        "google_api_url",
        "google_token_url",
        "microsoft_graph_url",
        "microsoft_login_url",
    )
    @classmethod
    def _strip_slash(cls, v: str | None) -> str | None:
        return v.rstrip("/") if v else v

    @field_validator("sync_window_past", "sync_window_future", "poll_interval", "lease_duration")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("must be a positive duration")
        return v

    @field_validator(
        "webhook_timeout",
        "webhook_retry_base",
        "webhook_retry_max",
        "webhook_give_up_after",
        "webhook_rotation_grace",
        "webhook_retention",
    )
    @classmethod
    def _positive_webhook_durations(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("must be a positive duration")
        return v

    @field_validator(
        "bot_dispatch_deadline", "bot_retry_base", "bot_retry_max", "bot_launch_timeout"
    )
    @classmethod
    def _positive_bot_durations(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("must be a positive duration")
        return v

    @field_validator(
        "push_safety_interval",
        "push_channel_ttl",
        "push_renew_margin",
        "push_retry_base",
        "push_retry_max",
        "push_rate_interval",
    )
    @classmethod
    def _positive_push_durations(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("must be a positive duration")
        return v

    @field_validator("bot_lead_time")
    @classmethod
    def _lead_time(cls, v: timedelta) -> timedelta:
        if not timedelta(0) <= v <= timedelta(days=1):
            raise ValueError("must be between 0 seconds and 1 day")
        return v

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'showup.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def master_key_bytes(self) -> bytes:
        """The 32-byte master key, from ``SHOWUP_MASTER_KEY`` (base64)."""
        if self.master_key is None:
            raise ConfigError(
                "SHOWUP_MASTER_KEY is not set. Generate one with "
                '`python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"`'
            )
        return decode_master_key(self.master_key.get_secret_value())


def decode_master_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("SHOWUP_MASTER_KEY must be base64") from exc
    if len(raw) != 32:
        raise ConfigError("SHOWUP_MASTER_KEY must decode to exactly 32 bytes")
    return raw


def load_or_create_master_key(data_dir: Path) -> tuple[str, bool]:
    """Read ``master.key`` in ``data_dir``, creating it (mode 0600) on first use.

    Returns the base64 key and whether it was just created.
    """
    path = data_dir / "master.key"
    if path.exists():
        text = path.read_text().strip()
        decode_master_key(text)
        return text, False
    data_dir.mkdir(parents=True, exist_ok=True)
    text = base64.b64encode(os.urandom(32)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    return text, True


def sync_concurrency_share(total: int, processes: int) -> int:
    """Each of ``processes`` worker processes' part of ``sync_concurrency_per_provider``.

    The setting bounds how many calendars of one provider the worker command syncs at
    once (the load we put on the provider); ``showup worker --processes N`` splits it
    among its processes instead of multiplying it, rounding up so none gets zero.
    """
    return max(1, -(-total // processes))
