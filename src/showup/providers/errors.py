"""Typed provider errors. Engines branch on these types, never on HTTP status codes.

ProviderError
 ├── AuthRevoked        refresh token dead or access refused for good (invalid_grant, …)
 ├── RateLimited        429 / 403 rateLimitExceeded; carries retry_after when given
 ├── Transient          5xx, timeouts, connection failures: retry with backoff
 ├── CursorExpired      410 fullSyncRequired / SyncStateNotFound: drop cursor, full sync
 ├── NotFound           the calendar (or channel) no longer exists
 └── Rejected           the provider refused our request (4xx we did not expect); a bug
                        or a setting, not something a retry fixes soon
"""

from __future__ import annotations

from datetime import timedelta


class ProviderError(Exception):
    """Base of every error an adapter raises."""

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        self.status = status


class AuthRevoked(ProviderError):
    """The end user must reconnect: the refresh token is expired, revoked or refused."""


class RateLimited(ProviderError):
    def __init__(
        self,
        message: str = "rate limited",
        *,
        retry_after: timedelta | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class Transient(ProviderError):
    """A fault that a retry with backoff is expected to clear."""


class CursorExpired(ProviderError):
    """The stored sync cursor is no longer valid; a full sync is required."""


class NotFound(ProviderError):
    """The calendar or resource asked for does not exist (any more)."""


class Rejected(ProviderError):
    """The provider answered a 4xx that no retry will fix."""
