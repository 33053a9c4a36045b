"""Deterministic calendars for the ingest benchmark, written straight into an emulator World.

Every user gets exactly ``events`` occurrences inside the default sync window (1 day back,
28 days ahead) when listed with ``singleEvents=true``: one weekday stand-up series, a few
weekly series and single events, with a realistic mix of join links (Meet in
``conferenceData``, Zoom in ``location``, Teams and Webex in an HTML ``description``, none)
and external attendees. Attendees are never world users, so no meeting is copied onto a
second benchmark calendar and the expected row count stays ``users x events``.

The same ``seed`` gives the same events (ids, times, attendees); only OAuth tokens are
random, as they are on Google.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from showup.emulator import World
from showup.emulator.google.listing import ListQuery

DOMAIN = "bench.example"
ZONES = (
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Europe/Berlin",
    "Europe/London",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "UTC",
)
_FIRST = ("ana", "ben", "chen", "dara", "emil", "fatima", "gus", "hana", "ivan", "jo", "kofi")
_LAST = ("silva", "meyer", "okafor", "tanaka", "novak", "garcia", "haddad", "lindqvist", "rossi")
_ORGS = ("globex.example", "initech.example", "umbrella.example", "hooli.example", "acme.example")
_TOPICS = (
    "Pipeline review",
    "Design sync",
    "Customer call",
    "Interview",
    "Quarterly planning",
    "Demo",
    "Retro",
    "Incident review",
    "Budget",
    "Onboarding",
    "Roadmap",
    "Hiring panel",
)
_RESPONSES = ("accepted", "accepted", "accepted", "needsAction", "tentative", "declined")
_BLURB = (
    "Agenda:\n1. Status since last time\n2. Open questions and risks\n3. Next steps, owners"
    " and dates\n\nPlease read the doc beforehand and add comments inline."
)


@dataclass(frozen=True, slots=True)
class Mix:
    """How one calendar's ``events`` occurrences split into series and single events."""

    daily: int  # occurrences of the weekday stand-up (0: none)
    weekly: int  # weekly series, WEEKLY_COUNT occurrences each
    singles: int


WEEKLY_COUNT = 4


def mix(events: int) -> Mix:
    if events < 1:
        raise ValueError("events must be at least 1")
    daily = 15 if events >= 60 else 0
    weekly = min(5, (events - daily) // 20)
    return Mix(daily=daily, weekly=weekly, singles=events - daily - WEEKLY_COUNT * weekly)


def user_email(index: int) -> str:
    return f"user{index:05d}@{DOMAIN}"


def _local(day: date, hour: int, minute: int) -> str:
    """Wall-clock time without offset: the event's ``timeZone`` places it (PROTOCOLS §1.3)."""
    hour, minute = hour + minute // 60, minute % 60
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00"


def _external(rng: random.Random) -> dict[str, Any]:
    first, last, org = rng.choice(_FIRST), rng.choice(_LAST), rng.choice(_ORGS)
    person: dict[str, Any] = {
        "email": f"{first}.{last}@{org}",
        "responseStatus": rng.choice(_RESPONSES),
    }
    if rng.random() < 0.7:
        person["displayName"] = f"{first.title()} {last.title()}"
    if rng.random() < 0.1:
        person["optional"] = True
    return person


def _attendees(rng: random.Random, owner: str, n: int) -> list[dict[str, Any]]:
    if n == 0:
        return []
    people = {p["email"]: p for p in (_external(rng) for _ in range(n))}
    return [{"email": owner, "responseStatus": "accepted"}, *people.values()]


def _link(rng: random.Random, n: int) -> dict[str, Any]:
    """Join-link fields: 40 % Meet, 20 % Zoom, 15 % Teams, 5 % Webex, 20 % none."""
    roll = rng.random()
    code = f"{n % 997:03d}"
    if roll < 0.40:
        # Meet codes are letters only (xxx-xxxx-xxx): n spelled in base 26.
        word = "".join("abcdefghijklmnopqrstuvwxyz"[n // 26**i % 26] for i in range(3))
        meet = f"{rng.choice('abcdefgh')}{word[:2]}-{word}k-{rng.choice('mnopqrs')}{word[1:]}"
        uri = f"https://meet.google.com/{meet}"
        return {
            "hangoutLink": uri,
            "conferenceData": {
                "conferenceId": meet,
                "conferenceSolution": {
                    "key": {"type": "hangoutsMeet"},
                    "name": "Google Meet",
                    "iconUri": "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png",
                },
                "entryPoints": [
                    {"entryPointType": "video", "uri": uri, "label": uri[8:]},
                    {
                        "entryPointType": "phone",
                        "uri": f"tel:+1-555-01{code}",
                        "label": f"+1 555-01{code}",
                        "pin": f"{rng.randrange(10**8):08d}",
                        "regionCode": "US",
                    },
                ],
            },
            "description": _BLURB if rng.random() < 0.3 else None,
        }
    if roll < 0.60:
        meeting = f"8{rng.randrange(10**9, 10**10)}"
        url = f"https://globex.zoom.us/j/{meeting}?pwd=QmV0dGVyTWVldGluZ3M{code}"
        return {
            "location": url,
            "description": (
                "Hi there, you are invited to a Zoom meeting.\n\n"
                f"Join Zoom Meeting\n{url}\n\nMeeting ID: {meeting[:3]} {meeting[3:7]} "
                f"{meeting[7:]}\nPasscode: {code}\n\nOne tap mobile\n+13462487799,,{meeting}#"
            ),
        }
    if roll < 0.75:
        thread = f"19%3ameeting_{rng.randrange(16**12):012x}%40thread.v2"
        return {
            "description": (
                "<p>________________</p><p><b>Microsoft Teams meeting</b></p>"
                '<p>Join on your computer, mobile app or room device <a href="https://teams'
                f".microsoft.com/l/meetup-join/{thread}/0?context=%7b%22Tid%22%3a%2272f988bf"
                '%22%2c%22Oid%22%3a%22a1b2c3%22%7d">Click here to join the meeting</a></p>'
                f"<p>Meeting ID: 2{code} 4{code} 9{code}<br>Passcode: tQ{code}</p>"
                "<p>________________</p>"
            ),
            "location": "Microsoft Teams Meeting",
        }
    if roll < 0.80:
        return {
            "location": f"https://globex.webex.com/meet/room{code}",
            "description": f"Webex meeting room{code}. Join from the link in the location.",
        }
    return {"description": _BLURB} if rng.random() < 0.3 else {}


def calendar_items(
    index: int, seed: int, events: int, today: date, tz: str
) -> list[dict[str, Any]]:
    """The world input of one user's events (series and singles, not yet expanded)."""
    rng = random.Random(f"showup-bench:{seed}:{index}")
    owner = user_email(index)
    m = mix(events)
    items: list[dict[str, Any]] = []

    def add(base: dict[str, Any], n_attendees: int, n: int) -> None:
        body = {k: v for k, v in {**base, **_link(rng, n)}.items() if v is not None}
        attendees = _attendees(rng, owner, n_attendees)
        if attendees:
            body["attendees"] = attendees
        items.append(body)

    first_workday = today + timedelta(days=1)
    while first_workday.weekday() >= 5:
        first_workday += timedelta(days=1)
    if m.daily:
        add(
            {
                "summary": "Team stand-up",
                "start": {"dateTime": _local(first_workday, 9, 30), "timeZone": tz},
                "end": {"dateTime": _local(first_workday, 9, 45), "timeZone": tz},
                "recurrence": [f"RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT={m.daily}"],
            },
            5,
            len(items),
        )
    for w in range(m.weekly):
        day = today + timedelta(days=1 + rng.randrange(5))
        hour, minute = rng.randrange(8, 18), rng.choice((0, 30))
        add(
            {
                "summary": f"1:1 {rng.choice(_FIRST).title()} / {owner.split('@')[0]}"
                if w % 2 == 0
                else f"Weekly {rng.choice(_TOPICS).lower()}",
                "start": {"dateTime": _local(day, hour, minute), "timeZone": tz},
                "end": {"dateTime": _local(day, hour, minute + 25), "timeZone": tz},
                "recurrence": [f"RRULE:FREQ=WEEKLY;COUNT={WEEKLY_COUNT}"],
            },
            1 if w % 2 == 0 else rng.randrange(2, 7),
            len(items),
        )
    for _ in range(m.singles):
        day = today + timedelta(days=1 + rng.randrange(26))
        if rng.random() < 0.02:
            add(
                {
                    "summary": rng.choice(("Offsite", "Conference", "Out of office")),
                    "start": {"date": day.isoformat()},
                    "end": {"date": (day + timedelta(days=1)).isoformat()},
                },
                0,
                len(items),
            )
            continue
        hour, minute = rng.randrange(7, 19), rng.choice((0, 15, 30))
        length = rng.choice((15, 30, 30, 45, 60, 60, 90))
        add(
            {
                "summary": f"{rng.choice(_TOPICS)} #{rng.randrange(1000)}",
                "start": {"dateTime": _local(day, hour, minute), "timeZone": tz},
                "end": {"dateTime": _local(day, hour, minute + length), "timeZone": tz},
            },
            rng.choice((0, 1, 1, 2, 3, 4, 6, 8)),
            len(items),
        )
    return items


def seed_world(
    world: World,
    *,
    users: int,
    events: int,
    seed: int,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> tuple[str, str, list[tuple[str, str]]]:
    """Add ``users`` users with ``events`` occurrences each and one OAuth client.

    Returns ``(client_id, client_secret, [(email, refresh_token), …])``.
    """
    client_id, client_secret = world.add_oauth_client()
    grants: list[tuple[str, str]] = []
    bulk = getattr(world, "create_events", None)
    for index in range(users):
        email = user_email(index)
        tz = ZONES[index % len(ZONES)]
        world.add_user(email, name=f"User {index}", time_zone=tz)
        today = now.astimezone(ZoneInfo(tz)).date()
        items = calendar_items(index, seed, events, today, tz)
        if bulk is not None:
            bulk(email, items)
        else:  # an emulator without the bulk call: same result, slower
            for item in items:
                world.create_event(email, item)
        grants.append((email, world.grant(client_id, email)))
        if progress is not None:
            progress(index + 1)
    return client_id, client_secret, grants


def window_listing(
    now: datetime, *, max_results: int = 250, slack: timedelta = timedelta(0)
) -> ListQuery:
    """The ``events.list`` query of a full sync at ``now`` over the default window (1 day
    back, 28 days ahead, ``singleEvents``), reaching ``slack`` further ahead."""
    return ListQuery(
        single_events=True,
        time_min=now - timedelta(days=1),
        time_max=now + timedelta(days=28) + slack,
        max_results=max_results,
    )
