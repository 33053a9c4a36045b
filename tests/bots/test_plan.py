"""The pure planner: one test per row of ``bots/plan.py``'s table, and a property test
that planning is idempotent (a converged bot plans no action)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from showup.bots.plan import (
    BotView,
    Cancel,
    Fresh,
    LinkedEvent,
    Note,
    Retarget,
    Revive,
    deadline_for,
    plan_bot,
)

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)
URL = "https://meet.google.com/abc-defg-hij"


def t(hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 11, 2, hh, mm, tzinfo=UTC)


def ev(eid: str, start: datetime, minutes: int = 60, **kw: object) -> LinkedEvent:
    return LinkedEvent(
        eid,
        start,
        start + timedelta(minutes=minutes),
        kw.pop("url", URL),
        "google_meet",
        **kw,  # type: ignore[arg-type]
    )


def bot(status: str = "scheduled", **kw: object) -> BotView:
    values: dict[str, object] = {
        "id": "b1",
        "status": status,
        "join_at": t(9, 58),
        "join_at_override": None,
        "lead": timedelta(minutes=2),
        "meeting_url": URL,
        "meeting_platform": "google_meet",
        "meeting_url_override": None,
        "override_platform": None,
        "meeting_start": t(10),
        "meeting_end": t(11),
        "deadline": t(10, 3),
    }
    values.update(kw)
    return BotView(**values)  # type: ignore[arg-type]


def test_converged_scheduled_bot_plans_nothing() -> None:
    assert plan_bot(bot(), [ev("e1", t(10))], NOW, WINDOW) == []


def test_moved_event_retargets() -> None:
    [action] = plan_bot(bot(), [ev("e1", t(14))], NOW, WINDOW)
    assert isinstance(action, Retarget)
    assert (action.target.join_at, action.target.deadline) == (t(13, 58), t(14, 3))


def test_earliest_event_sets_join_and_link() -> None:
    other = "https://acme.zoom.us/j/123456789"
    [action] = plan_bot(bot(), [ev("e2", t(11)), ev("e1", t(10, 30), url=other)], NOW, WINDOW)
    assert isinstance(action, Retarget)
    assert action.target.join_at == t(10, 28) and action.target.meeting_url == other
    assert action.target.meeting_end == t(12)


def test_pinned_join_time_does_not_follow() -> None:
    pinned = bot(join_at_override=t(9, 45), join_at=t(9, 45))
    [action] = plan_bot(pinned, [ev("e1", t(14))], NOW, WINDOW)
    assert isinstance(action, Retarget) and action.target.join_at == t(9, 45)


def test_url_override_wins_and_makes_linkless_events_eligible() -> None:
    zoom = "https://acme.zoom.us/j/1"
    b = bot(meeting_url_override=zoom, override_platform="zoom")
    [action] = plan_bot(b, [ev("e1", t(10), url=None)], NOW, WINDOW)
    assert isinstance(action, Retarget) and action.target.meeting_url == zoom


def test_cancel_reasons() -> None:
    assert plan_bot(bot(), [], NOW, WINDOW) == [Cancel("b1", "unscheduled")]
    gone = [ev("e1", t(10), blocked="event_cancelled")]
    assert plan_bot(bot(), gone, NOW, WINDOW) == [Cancel("b1", "event_cancelled")]
    off = [ev("e1", t(10), blocked="calendar_disconnected")]
    assert plan_bot(bot(), off, NOW, WINDOW) == [Cancel("b1", "calendar_disconnected")]
    assert plan_bot(bot(), [ev("e1", t(7))], NOW, WINDOW) == [Cancel("b1", "meeting_ended")]
    assert plan_bot(bot(), [ev("e1", t(10), url=None)], NOW, WINDOW) == [
        Cancel("b1", "no_meeting_url")
    ]


def test_one_live_event_keeps_a_shared_bot() -> None:
    links = [ev("e1", t(10), blocked="event_cancelled"), ev("e2", t(10))]
    assert plan_bot(bot(), links, NOW, WINDOW) == []


def test_cancelled_bot_revives_with_a_fresh_deadline() -> None:
    [action] = plan_bot(bot("cancelled", deadline=t(8)), [ev("e1", t(10))], NOW, WINDOW)
    assert isinstance(action, Revive) and action.target.deadline == t(10, 3)
    assert plan_bot(bot("cancelled"), [ev("e1", t(7))], NOW, WINDOW) == []


def test_late_planned_bot_gets_its_window_from_now() -> None:
    late = NOW.replace(hour=10, minute=10)
    [action] = plan_bot(bot("cancelled"), [ev("e1", t(10))], late, WINDOW)
    assert isinstance(action, Revive)
    assert action.target.join_at == t(9, 58) and action.target.deadline == t(10, 15)
    assert deadline_for(t(10), t(10, 2), NOW, WINDOW) == t(10, 2)  # never past the end


def test_dispatching_bot_in_flight_is_left_alone() -> None:
    assert plan_bot(bot("dispatching", in_flight=True), [], NOW, WINDOW) == []


def test_dispatching_bot_between_retries() -> None:
    assert plan_bot(bot("dispatching"), [], NOW, WINDOW) == [Cancel("b1", "unscheduled")]
    [note] = plan_bot(bot("dispatching"), [ev("e1", t(10, 30))], NOW, WINDOW)
    assert isinstance(note, Note) and "not moved" in note.note
    # The same note is not written twice.
    assert plan_bot(bot("dispatching", note=note.note), [ev("e1", t(10, 30))], NOW, WINDOW) == []


def test_launched_bot_gets_a_fresh_bot_for_a_later_occurrence() -> None:
    links = [ev("e1", t(10)), ev("e2", t(11)), ev("e3", t(15))]
    actions = plan_bot(bot("dispatched"), links, NOW, WINDOW)
    assert actions == [Fresh("b1", ("e2", "e3"))]
    assert plan_bot(bot("failed"), links, NOW, WINDOW) == [Fresh("b1", ("e2", "e3"))]


def test_launched_bot_records_drift() -> None:
    [note] = plan_bot(bot("dispatched"), [ev("e1", t(10, 15))], NOW, WINDOW)
    assert isinstance(note, Note)
    [gone] = plan_bot(bot("dispatched"), [ev("e1", t(10), blocked="event_cancelled")], NOW, WINDOW)
    assert isinstance(gone, Note) and "cancelled" in gone.note


def _apply(b: BotView, actions: list[object]) -> BotView:
    for a in actions:
        if isinstance(a, Retarget | Revive):
            tg = a.target
            b = dataclasses.replace(
                b,
                status="scheduled",
                join_at=tg.join_at,
                meeting_url=tg.meeting_url,
                meeting_platform=tg.meeting_platform,
                meeting_start=tg.meeting_start,
                meeting_end=tg.meeting_end,
                deadline=tg.deadline,
            )
        elif isinstance(a, Cancel):
            b = dataclasses.replace(b, status="cancelled")
        elif isinstance(a, Note):
            b = dataclasses.replace(b, note=a.note)
    return b


_events = st.lists(
    st.builds(
        lambda i, off, dur, blocked, link: LinkedEvent(
            f"e{i}",
            NOW + timedelta(minutes=off),
            NOW + timedelta(minutes=off + dur),
            URL if link else None,
            "google_meet" if link else None,
            blocked,
        ),
        st.integers(0, 5),
        st.integers(-120, 600),
        st.integers(1, 120),
        st.sampled_from([None, None, "event_cancelled", "calendar_disconnected"]),
        st.booleans(),
    ),
    max_size=5,
    unique_by=lambda e: e.event_id,
)


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from(["scheduled", "cancelled", "dispatching", "dispatched", "failed"]),
    links=_events,
    pinned=st.booleans(),
)
def test_planning_converges_in_one_step(
    status: str, links: list[LinkedEvent], pinned: bool
) -> None:
    b = bot(status, join_at_override=t(9, 45) if pinned else None)
    once = _apply(b, plan_bot(b, links, NOW, WINDOW))
    again = [a for a in plan_bot(once, links, NOW, WINDOW) if not isinstance(a, Fresh)]
    assert again == []
