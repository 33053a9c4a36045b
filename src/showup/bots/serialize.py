"""Bot → JSON, for the API and for ``bot.*`` webhooks alike (one shape everywhere)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from showup.db.bot_models import Bot


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.isoformat().replace("+00:00", "Z")


def bot_json(bot: Bot, event_ids: list[str]) -> dict[str, Any]:
    return {
        "id": bot.id,
        "status": bot.status,
        "status_reason": bot.status_reason,
        "join_at": iso(bot.join_at),
        "join_at_override": iso(bot.join_at_override),
        "lead_time_seconds": bot.lead_time_seconds,
        "meeting_url": bot.meeting_url,
        "meeting_platform": bot.meeting_platform,
        "deduplication_key": bot.deduplication_key,
        "bot_config": bot.bot_config,
        "events": event_ids,
        "meeting_start_time": iso(bot.meeting_start),
        "meeting_end_time": iso(bot.meeting_end),
        "deadline": iso(bot.deadline),
        "attempts": bot.attempts,
        "next_attempt_at": iso(bot.next_attempt_at),
        "dispatched_at": iso(bot.dispatched_at),
        "vendor_bot_id": bot.vendor_bot_id,
        "error": bot.error,
        "note": bot.note,
        "created_at": iso(bot.created_at),
        "updated_at": iso(bot.updated_at),
    }


def event_bot_json(bot: Bot) -> dict[str, Any]:
    """One entry of an event's ``bots[]``: Recall's four fields, plus the status."""
    return {
        "bot_id": bot.id,
        "start_time": iso(bot.join_at),
        "deduplication_key": bot.deduplication_key,
        "meeting_url": bot.meeting_url,
        "status": bot.status,
    }
