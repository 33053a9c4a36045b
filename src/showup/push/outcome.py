"""What one step of the ``push`` job reports (``push.job``, ``push.renewal``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal[
    "created", "renewing", "renewed", "replaced", "expired", "stopped", "retry", "failed", "skipped"
]


@dataclass(slots=True)
class ChannelOutcome:
    row_id: str
    action: Action
    error: str | None = None


class LeaseLost(Exception):
    """Another worker holds this channel row now."""
