"""``bot_config``: the tenant's bot settings for one bot, checked at the edge.

Recall's scheduling body is ``{deduplication_key, bot_config}`` where ``bot_config`` is any
Create Bot field (PEERS §1c); we pass it through to the launcher untouched and read only
these keys:

- ``meeting_url``: join this link instead of the event's. Must be a join link we
  recognise (``meetings.normalize_url``); stored normalized.
- ``join_at``: ISO 8601 with a UTC offset. An explicit join time *pins* the bot: moving
  the event no longer moves it until the override is cleared (PATCH ``join_at: null``).
- ``lead_time_seconds`` (ours): join this many seconds before the start (0 to 86400),
  instead of the tenant's lead time.

An empty ``bot_config`` is accepted (the tenant's defaults apply).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from showup.bots.errors import InvalidBotRequest
from showup.meetings import detect_platform, normalize_url

MAX_CONFIG_BYTES: Final = 64 * 1024
MAX_LEAD_SECONDS: Final = 86_400
MAX_URL_CHARS: Final = 2048


@dataclass(frozen=True, slots=True)
class BotConfig:
    raw: dict[str, Any]
    meeting_url: str | None = None
    meeting_platform: str | None = None
    join_at: datetime | None = None
    lead_time_seconds: int | None = None


def parse_bot_config(raw: Any) -> BotConfig:
    """Check ``raw`` and pull out the keys we act on. Raises :class:`InvalidBotRequest`."""
    if not isinstance(raw, dict):
        raise InvalidBotRequest("invalid_bot_config", "bot_config must be an object.", "bot_config")
    try:
        size = len(json.dumps(raw, separators=(",", ":"), allow_nan=False))
    except (TypeError, ValueError):
        raise InvalidBotRequest(
            "invalid_bot_config", "bot_config must be plain JSON.", "bot_config"
        ) from None
    if size > MAX_CONFIG_BYTES:
        raise InvalidBotRequest(
            "invalid_bot_config",
            f"bot_config must be at most {MAX_CONFIG_BYTES} bytes of JSON.",
            "bot_config",
        )
    url, platform = _meeting_url(raw.get("meeting_url"))
    return BotConfig(
        raw=raw,
        meeting_url=url,
        meeting_platform=platform,
        join_at=parse_join_at(raw.get("join_at"), "bot_config.join_at"),
        lead_time_seconds=_lead(raw.get("lead_time_seconds")),
    )


def _meeting_url(value: Any) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    field = "bot_config.meeting_url"
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_URL_CHARS:
        raise InvalidBotRequest("invalid_meeting_url", "meeting_url must be a URL string.", field)
    url = normalize_url(value)
    if url is None:
        raise InvalidBotRequest(
            "invalid_meeting_url",
            "meeting_url is not a meeting join link of a supported platform.",
            field,
        )
    return url, detect_platform(url)


def parse_join_at(value: Any, field: str) -> datetime | None:
    """An aware datetime from an ISO 8601 string (or a datetime), None for None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str) and len(value) <= 64:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidBotRequest(
                "invalid_join_at", "join_at must be an ISO 8601 date-time.", field
            ) from None
    else:
        raise InvalidBotRequest("invalid_join_at", "join_at must be an ISO 8601 date-time.", field)
    if when.tzinfo is None or when.utcoffset() is None:
        # A naive time would be guessed at; refuse it (DESIGN: no hard-coded time zones).
        raise InvalidBotRequest(
            "invalid_join_at", "join_at must carry a UTC offset (e.g. 'Z').", field
        )
    return when


def _lead(value: Any) -> int | None:
    if value is None:
        return None
    # bool is an int subclass; `true` is not a number of seconds.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LEAD_SECONDS:
        raise InvalidBotRequest(
            "invalid_lead_time",
            f"lead_time_seconds must be an integer from 0 to {MAX_LEAD_SECONDS}.",
            "bot_config.lead_time_seconds",
        )
    return value


def lead_of(seconds: int | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)
