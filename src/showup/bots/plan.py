"""Plan, then act: what one bot should become, given its linked events (pure).

Input: the bot as stored (:class:`BotView`) and its *active* links (:class:`LinkedEvent`:
the events that asked for this bot, with their current start, end, link and whether they
can have a bot at all). Output: typed actions; the caller (``bots/reconcile.py``) applies
them. An event is *eligible* when it is live (not cancelled or deleted, its calendar not
disconnected), has not ended, and has a join link (its own or the bot's override).

| bot status                | eligible events               | action                           |
|---------------------------|-------------------------------|----------------------------------|
| scheduled                 | none                          | Cancel (reason from the links)   |
| scheduled                 | some                          | Retarget if join/url/meeting differ |
| cancelled                 | some                          | Revive (the event came back)     |
| cancelled                 | none                          | nothing                          |
| dispatching, in flight    | any                           | nothing (reconciled after it)    |
| dispatching, between tries| none                          | Cancel                           |
| dispatching, between tries| some, meeting moved           | Note (launch under way: not moved) |
| dispatched, failed        | starting at/after meeting_end | Fresh: a new bot for that occurrence |
| dispatched                | covered, but moved            | Note                             |

The wanted state of a live bot: one bot for all its eligible events, joining
``lead`` before the earliest start (or at the pinned ``join_at``), at the bot's override
link or else the earliest event's link. The launch deadline is ``dispatch_deadline``
after the join time (or after *now*, for a bot planned after its join time already
passed), and never after the meeting's end; it is kept as is while the join time does not
move.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from showup.db.bot_models import LIVE_STATUSES

_ISO = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class LinkedEvent:
    event_id: str
    start: datetime
    end: datetime
    meeting_url: str | None
    meeting_platform: str | None
    # Why this event cannot have a bot ("event_cancelled", "calendar_disconnected"), or None.
    blocked: str | None = None


@dataclass(frozen=True, slots=True)
class BotView:
    id: str
    status: str
    join_at: datetime
    join_at_override: datetime | None
    lead: timedelta
    meeting_url: str
    meeting_platform: str | None
    meeting_url_override: str | None
    override_platform: str | None
    meeting_start: datetime
    meeting_end: datetime
    deadline: datetime
    in_flight: bool = False
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    join_at: datetime
    meeting_url: str
    meeting_platform: str | None
    meeting_start: datetime
    meeting_end: datetime
    deadline: datetime


@dataclass(frozen=True, slots=True)
class Retarget:
    bot_id: str
    target: Target


@dataclass(frozen=True, slots=True)
class Cancel:
    bot_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Revive:
    bot_id: str
    target: Target


@dataclass(frozen=True, slots=True)
class Note:
    bot_id: str
    note: str


@dataclass(frozen=True, slots=True)
class Fresh:
    """Events past a launched bot's meeting want a bot of their own."""

    bot_id: str
    event_ids: tuple[str, ...]


Action = Retarget | Cancel | Revive | Note | Fresh


def eligible(bot: BotView, links: list[LinkedEvent], now: datetime) -> list[LinkedEvent]:
    return [
        e
        for e in links
        if e.blocked is None and e.end > now and (bot.meeting_url_override or e.meeting_url)
    ]


def deadline_for(
    join_at: datetime, meeting_end: datetime, now: datetime, window: timedelta
) -> datetime:
    # A bot planned after its join time gets its whole window from now: a meeting found
    # late (a user connected mid-meeting) is joined late rather than written off.
    base = max(join_at, now)
    deadline = base + window
    return min(deadline, meeting_end) if meeting_end > base else deadline


def target_for(bot: BotView, events: list[LinkedEvent], now: datetime, window: timedelta) -> Target:
    """The wanted state of ``bot`` serving ``events`` (non-empty, all eligible)."""
    first = min(events, key=lambda e: (e.start, e.event_id))
    if bot.meeting_url_override:
        url, platform = bot.meeting_url_override, bot.override_platform
    else:
        assert first.meeting_url is not None  # eligible() guarantees a link
        url, platform = first.meeting_url, first.meeting_platform
    start = first.start
    end = max(e.end for e in events)
    join_at = bot.join_at_override if bot.join_at_override is not None else start - bot.lead
    if bot.status == "scheduled" and join_at == bot.join_at:
        deadline = bot.deadline
    else:
        deadline = deadline_for(join_at, end, now, window)
    return Target(join_at, url, platform, start, end, deadline)


def cancel_reason(links: list[LinkedEvent], now: datetime) -> str:
    if not links:
        return "unscheduled"
    for e in sorted(links, key=lambda e: (e.start, e.event_id)):
        if e.blocked is not None:
            return e.blocked
    if all(e.end <= now for e in links):
        return "meeting_ended"
    return "no_meeting_url"


def _differs(bot: BotView, t: Target) -> bool:
    return (
        bot.join_at,
        bot.meeting_url,
        bot.meeting_platform,
        bot.meeting_start,
        bot.meeting_end,
        bot.deadline,
    ) != (t.join_at, t.meeting_url, t.meeting_platform, t.meeting_start, t.meeting_end, t.deadline)


def _drift_note(
    bot: BotView, covered: list[LinkedEvent], links: list[LinkedEvent], now: datetime
) -> str | None:
    """What changed about the meeting after the launch began, or None."""
    if not covered:
        if links and all(e.blocked is not None for e in links):
            return "event cancelled after the launch began; the bot was not recalled"
        return None
    first = min(covered, key=lambda e: (e.start, e.event_id))
    url = bot.meeting_url_override or first.meeting_url
    if first.start != bot.meeting_start or url != bot.meeting_url:
        return (
            f"meeting changed (start {first.start.strftime(_ISO)}) after the launch began;"
            " the bot was not moved"
        )
    return None


def plan_bot(
    bot: BotView, links: list[LinkedEvent], now: datetime, window: timedelta
) -> list[Action]:
    """Actions converging ``bot`` to what its ``links`` want at ``now`` (see the table)."""
    live = eligible(bot, links, now)
    if bot.status == "scheduled":
        if not live:
            return [Cancel(bot.id, cancel_reason(links, now))]
        target = target_for(bot, live, now, window)
        return [Retarget(bot.id, target)] if _differs(bot, target) else []
    if bot.status == "cancelled":
        if not live:
            return []
        # target_for plans a non-scheduled bot's deadline from scratch: the old one
        # belonged to the meeting as it was.
        return [Revive(bot.id, target_for(bot, live, now, window))]
    if bot.status == "dispatching":
        if bot.in_flight:
            return []
        if not live:
            return [Cancel(bot.id, cancel_reason(links, now))]
        note = _drift_note(bot, live, links, now)
        return [Note(bot.id, note)] if note and note != bot.note else []
    # dispatched or failed: history for its own meeting; a later occurrence is new work.
    assert bot.status not in LIVE_STATUSES
    beyond = [e for e in live if e.start >= bot.meeting_end]
    covered = [e for e in live if e.start < bot.meeting_end]
    actions: list[Action] = []
    if beyond:
        actions.append(Fresh(bot.id, tuple(sorted(e.event_id for e in beyond))))
    if bot.status == "dispatched":
        note = _drift_note(bot, covered, [e for e in links if e not in beyond], now)
        if note and note != bot.note:
            actions.append(Note(bot.id, note))
    return actions
