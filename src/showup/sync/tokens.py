"""Access tokens for one calendar: cached in memory, refreshed on demand.

Access tokens live about an hour and are never stored. A refresh token the provider
rotates (Microsoft does on every refresh, PROTOCOLS §2.1) is sealed and committed before
the new access token is used, so a crash cannot leave us holding only a dead token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from showup.clock import Clock
from showup.db.models import Calendar
from showup.providers.base import CalendarProvider, OAuthCredentials
from showup.security.vault import Vault

_EARLY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class _Cached:
    token: str
    expires_at: datetime


class TokenCache:
    """Process-wide cache of access tokens, keyed by calendar and refresh token."""

    def __init__(self) -> None:
        self._items: dict[str, _Cached] = {}

    @staticmethod
    def key(calendar_id: str, creds: OAuthCredentials) -> str:
        digest = hashlib.sha256(creds.refresh_token.encode()).hexdigest()[:16]
        return f"{calendar_id}:{digest}"

    def get(self, key: str, now: datetime) -> str | None:
        item = self._items.get(key)
        if item is None or item.expires_at - _EARLY <= now:
            return None
        return item.token

    def put(self, key: str, token: str, expires_at: datetime) -> None:
        self._items[key] = _Cached(token, expires_at)

    def drop_calendar(self, calendar_id: str) -> None:
        for k in [k for k in self._items if k.startswith(calendar_id + ":")]:
            del self._items[k]


class CalendarTokens:
    """A :class:`~showup.providers.base.TokenSource` for one calendar's sync."""

    def __init__(
        self,
        *,
        calendar_id: str,
        tenant_id: str,
        creds: OAuthCredentials,
        provider: CalendarProvider,
        cache: TokenCache,
        clock: Clock,
        vault: Vault,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self._sessions = sessions
        self.calendar_id = calendar_id
        self.tenant_id = tenant_id
        self.creds = creds
        self._provider = provider
        self._cache = cache
        self._clock = clock
        self._vault = vault

    async def __call__(self, force: bool = False) -> str:
        key = TokenCache.key(self.calendar_id, self.creds)
        if not force:
            cached = self._cache.get(key, self._clock.now())
            if cached is not None:
                return cached
        grant = await self._provider.refresh_access_token(self.creds)
        if grant.rotated_refresh_token and grant.rotated_refresh_token != self.creds.refresh_token:
            await self._store_refresh_token(grant.rotated_refresh_token)
            self.creds = replace(self.creds, refresh_token=grant.rotated_refresh_token)
            key = TokenCache.key(self.calendar_id, self.creds)
        self._cache.put(key, grant.token, grant.expires_at)
        return grant.token

    async def _store_refresh_token(self, refresh_token: str) -> None:
        sealed = self._vault.seal(self.tenant_id, refresh_token)
        async with self._sessions() as session:
            await session.execute(
                update(Calendar)
                .where(Calendar.id == self.calendar_id)
                .values(oauth_refresh_token_enc=sealed)
            )
            await session.commit()
