"""Errors of the bot services. The API turns them into 4xx with the same ``code``.

```
BotError (status, code, detail, field)
├── BotNotFound            404 not_found             unknown id, or another tenant's
├── InvalidBotRequest      400 invalid_bot_config, invalid_meeting_url, invalid_join_at,
│                              invalid_lead_time, invalid_deduplication_key
├── EventNotSchedulable    400 event_deleted, event_ended, no_meeting_url,
│                              calendar_disconnected
└── BotConflict            409 bot_not_editable, bot_not_cancellable
```

Services raise them before writing anything, so a refused request changes nothing
(DESIGN invariant 8).
"""

from __future__ import annotations


class BotError(Exception):
    status = 400

    def __init__(self, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field


class BotNotFound(BotError):
    status = 404

    def __init__(self, what: str) -> None:
        super().__init__("not_found", f"No such {what}.")


class InvalidBotRequest(BotError):
    status = 400


class EventNotSchedulable(BotError):
    status = 400


class BotConflict(BotError):
    status = 409
