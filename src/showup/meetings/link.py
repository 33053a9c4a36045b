"""The value this package produces."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MeetingLink:
    """A recognised join link.

    ``url`` is the normalized join URL (see the package docstring for the policy): it is what a
    bot is sent and, with the start time, what identifies a meeting across calendars.
    ``platform`` is a snake_case id from :mod:`showup.meetings.platforms`.
    """

    url: str
    platform: str
