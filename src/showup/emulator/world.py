"""The fake world behind every emulator: users, OAuth clients, tokens, calendars, events.

Provider-neutral: the Google routes and the Microsoft Graph routes read this state and
render it in their own wire shape. Events enter in the world's input format, a subset of
the Google event resource (see :mod:`showup.emulator.model`); the Python methods return
Google JSON (``showup.emulator.graph.graph_event`` renders Graph JSON). OAuth clients
belong to one provider (``"google"`` or ``"microsoft"``, PROTOCOLS §1.1 and §2.1).

Time comes only from the injected :class:`~showup.clock.Clock` (DESIGN invariant 6).
All methods take one re-entrant lock, so a test thread may mutate the world while
uvicorn serves it from another thread.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from showup.clock import Clock
from showup.emulator.events import Calendar, EventCore
from showup.emulator.faults import Faults
from showup.emulator.model import InvalidEvent, NotFound, Person, zone
from showup.emulator.mutations import Mutations
from showup.emulator.outbox import Outbox

DEFAULT_SCOPES = (
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar.events.readonly",
)
# PROTOCOLS §2.1 "Scopes": offline_access brings the refresh token; Calendars.Read the data.
MICROSOFT_SCOPES = (
    "openid",
    "profile",
    "offline_access",
    "https://graph.microsoft.com/Calendars.Read",
)
PROVIDERS = ("google", "microsoft")
# Called after each change with (calendar id, core id, changed items, new on that calendar).
ChangeListener = Callable[[str, str, list[str | None], bool], None]


class OAuthError(Exception):
    """A token-endpoint failure in RFC 6749 §5.2 shape (PROTOCOLS §1.1)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description


class AuthError(Exception):
    """An API call without a live access token (Google: 401 authError, §1.6)."""


@dataclass
class Settings:
    """World behaviour switches; tests flip them, defaults follow PROTOCOLS §5."""

    # §1.2/§5: pages may be empty or short while more remain. When on, the 2nd page of
    # every three is empty and the 3rd is half-size, deterministically.
    quirky_pages: bool = True
    # How far ahead unbounded series expand when a list has no timeMax.
    expansion_horizon: timedelta = timedelta(days=365)
    access_token_ttl: timedelta = timedelta(seconds=3599)
    # None: sync tokens live until expire_sync_tokens(); else they expire by the clock.
    # Applies to Graph delta and skip tokens too.
    sync_token_ttl: timedelta | None = None
    # ---- Microsoft Graph (PROTOCOLS §2, §5; docs/emulator.md) ----
    # Page size without Prefer: odata.maxpagesize (the real default is undocumented, §2.2).
    graph_page_size: int = 10
    # §2.2 "Expect replays and duplicates within a round": later delta pages repeat the
    # previous page's last item.
    graph_replays: bool = True
    # Real calendarView/delta returns occurrences with only id, type, seriesMasterId,
    # start and end; the rest is on the seriesMaster item.
    graph_sparse_occurrences: bool = True
    # Outlook keeps a cancelled meeting on attendees' calendars (isCancelled: true).
    graph_attendee_cancellations: bool = True
    # §2.1: Microsoft does not revoke the old refresh token when it issues a new one.
    graph_old_refresh_tokens: bool = True


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str
    provider: str = "google"


@dataclass
class Grant:
    refresh_token: str
    client_id: str
    email: str
    scopes: tuple[str, ...]
    created: datetime
    revoked: bool = False
    provider: str = "google"
    # Microsoft rotates refresh tokens (§2.1): every token of the grant, newest last.
    tokens: list[str] = field(default_factory=list)


@dataclass
class AccessGrant:
    token: str
    grant: Grant
    expires_at: datetime
    refresh_token: str | None = None  # the rotated refresh token (Microsoft only)

    @property
    def provider(self) -> str:
        return self.grant.provider


@dataclass
class User:
    email: str
    name: str | None
    time_zone: str
    calendars: list[str] = field(default_factory=list)


class World(Mutations):
    """The whole fake world. See docs/emulator.md for the Python and HTTP surface."""

    def __init__(self, clock: Clock, settings: Settings | None = None) -> None:
        self.clock = clock
        self.settings = settings or Settings()
        self.faults = Faults()
        self.outbox = Outbox()
        # Called with a calendar id after each change to it (Google push hooks in here).
        self.listeners: list[Callable[[str], None]] = []
        # Called with the details of each change (Graph subscriptions hook in here).
        self.change_listeners: list[ChangeListener] = []
        # Provider add-ons keyed by name (e.g. Google's push hub); reset() resets them.
        self.extensions: dict[str, Any] = {}
        self.lock = threading.RLock()
        # Bumped by reset() and folded into calendar epochs, so sync tokens from before
        # a reset answer 410 even when a calendar of the same id exists again.
        self.generation = 0
        self._reset_state()

    def _reset_state(self) -> None:
        self.clients: dict[str, OAuthClient] = {}
        self.users: dict[str, User] = {}
        self.calendars: dict[str, Calendar] = {}
        self.cores: dict[str, EventCore] = {}
        self.grants: dict[str, Grant] = {}
        self.access: dict[str, AccessGrant] = {}
        self.seq = 0
        self._ids = 0

    def reset(self) -> None:
        """Forget everything (users, tokens, events, faults); keep the clock and settings."""
        with self.lock:
            self.generation += 1
            self._reset_state()
            self.faults.clear()
            self.outbox.clear()
            for extension in self.extensions.values():
                reset = getattr(extension, "reset", None)
                if callable(reset):
                    reset()

    # ---- identifiers -------------------------------------------------------------

    def new_id(self) -> str:
        """A deterministic id ``[a-v0-9]{26}`` (PROTOCOLS §1.3 "Identity": base32hex).

        Multiplying a counter by an odd constant modulo 2**104 is a bijection, so ids are
        unique and look scattered without hashing; lowercase hex is a subset of base32hex.
        """
        self._ids += 1
        return f"{(self._ids * 0x9E3779B97F4A7C15F39CC0605D) % (1 << 104):026x}"

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # ---- accounts ----------------------------------------------------------------

    def add_oauth_client(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        provider: str = "google",
    ) -> tuple[str, str]:
        """A Google (default) or Microsoft (``provider="microsoft"``) OAuth client."""
        if provider not in PROVIDERS:
            raise InvalidEvent(f"unknown provider {provider!r}")
        with self.lock:
            if provider == "microsoft":
                hexid = self.new_id()
                cid = client_id or str(uuid.UUID(hexid[:32].ljust(32, "0")))
                secret = client_secret or "Q~" + secrets.token_urlsafe(30)
            else:
                cid = client_id or f"{self.new_id()[:12]}.apps.googleusercontent.com"
                secret = client_secret or "GOCSPX-" + secrets.token_urlsafe(21)
            self.clients[cid] = OAuthClient(cid, secret, provider)
            return cid, secret

    def add_user(self, email: str, name: str | None = None, time_zone: str = "UTC") -> User:
        """Add a user and her primary calendar, whose id is her email as on Google."""
        email = email.lower()
        with self.lock:
            if email in self.users:
                raise InvalidEvent(f"user {email} exists")
            zone(time_zone)
            user = User(email=email, name=name, time_zone=time_zone)
            self.users[email] = user
            self._add_calendar(user, email, summary=email, primary=True, time_zone=time_zone)
            return user

    def add_calendar(
        self, email: str, summary: str, time_zone: str | None = None, calendar_id: str | None = None
    ) -> str:
        """Add a secondary calendar to a user; returns its id."""
        with self.lock:
            user = self.user(email)
            cal_id = calendar_id or f"c_{self.new_id()}@group.calendar.google.com"
            if cal_id in self.calendars:
                raise InvalidEvent(f"calendar {cal_id} exists")
            tz = time_zone or user.time_zone
            self._add_calendar(user, cal_id, summary=summary, primary=False, time_zone=tz)
            return cal_id

    def _add_calendar(
        self, user: User, cal_id: str, *, summary: str, primary: bool, time_zone: str
    ) -> None:
        self.calendars[cal_id] = Calendar(
            id=cal_id,
            owner=user.email,
            summary=summary,
            time_zone=time_zone,
            primary=primary,
            epoch=self.generation << 32,
        )
        user.calendars.append(cal_id)

    def user(self, email: str) -> User:
        try:
            return self.users[email.lower()]
        except KeyError:
            raise NotFound(f"no user {email}") from None

    def calendar(self, email: str, calendar_id: str = "primary") -> Calendar:
        """The user's calendar; ``primary`` means her primary one. Others' calendars: NotFound."""
        user = self.user(email)
        cal_id = user.email if calendar_id == "primary" else calendar_id
        cal = self.calendars.get(cal_id)
        if cal is None or cal.owner != user.email:
            raise NotFound(f"no calendar {calendar_id} for {email}")
        return cal

    def person(self, email: str) -> Person:
        user = self.users.get(email.lower())
        return Person(email=email.lower(), display_name=user.name if user else None)

    # ---- OAuth (PROTOCOLS §1.1) ----------------------------------------------------

    def grant(self, client_id: str, email: str, scopes: tuple[str, ...] | None = None) -> str:
        """An offline grant of ``email`` to the client: returns the refresh token.

        Default scopes follow the client's provider (Google calendar read-only, or
        Microsoft ``openid profile offline_access Calendars.Read``).
        """
        with self.lock:
            client = self.clients.get(client_id)
            if client is None:
                raise NotFound(f"no client {client_id}")
            user = self.user(email)
            if scopes is None:
                scopes = MICROSOFT_SCOPES if client.provider == "microsoft" else DEFAULT_SCOPES
            token = self._refresh_token(client.provider)
            grant = Grant(token, client_id, user.email, tuple(scopes), self.clock.now())
            grant.provider = client.provider
            grant.tokens.append(token)
            self.grants[token] = grant
            return token

    @staticmethod
    def _refresh_token(provider: str) -> str:
        if provider == "microsoft":
            return "0.AXkA" + secrets.token_urlsafe(96)
        return "1//0" + secrets.token_urlsafe(48)

    def revoke(self, token: str) -> None:
        """Revoke a grant by its refresh token or any of its access tokens (Google revokes
        the whole grant either way). Later refreshes: 400 invalid_grant; calls: 401."""
        with self.lock:
            grant = self.grants.get(token)
            if grant is None and token in self.access:
                grant = self.access[token].grant
            if grant is None:
                raise NotFound("no such token")
            grant.revoked = True

    def refresh(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        provider: str | None = None,
    ) -> AccessGrant:
        """The refresh_token grant; raises :class:`OAuthError` (RFC 6749 §5.2 codes).

        ``provider`` set: a client of another provider is ``invalid_client``. Microsoft
        clients get a new refresh token every time (``access.refresh_token``, §2.1); the
        old ones keep working unless ``settings.graph_old_refresh_tokens`` is off.
        """
        with self.lock:
            client = self.clients.get(client_id)
            if (
                client is None
                or (provider is not None and client.provider != provider)
                or not secrets.compare_digest(client.client_secret, client_secret)
            ):
                raise OAuthError(401, "invalid_client", "Unauthorized")
            grant = self.grants.get(refresh_token)
            if grant is None or grant.revoked or grant.client_id != client_id:
                raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
            rotated = None
            if client.provider == "microsoft":
                if not self.settings.graph_old_refresh_tokens and refresh_token != grant.tokens[-1]:
                    raise OAuthError(400, "invalid_grant", "The refresh token has been replaced.")
                rotated = self._refresh_token("microsoft")
                grant.tokens.append(rotated)
                self.grants[rotated] = grant
                token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(96)
            else:
                token = "ya29." + secrets.token_urlsafe(64)
            expires = self.clock.now() + self.settings.access_token_ttl
            access = AccessGrant(token, grant, expires, refresh_token=rotated)
            self.access[token] = access
            return access

    def authenticate(self, access_token: str) -> AccessGrant:
        """The live grant behind a Bearer token, or :class:`AuthError`."""
        with self.lock:
            access = self.access.get(access_token)
            if access is None or access.grant.revoked or access.expires_at <= self.clock.now():
                raise AuthError("Invalid Credentials")
            return access

    def expire_sync_tokens(self, email: str | None = None) -> None:
        """Every sync token issued so far (for this user's calendars) answers 410."""
        with self.lock:
            for cal in self.calendars.values():
                if email is None or cal.owner == email.lower():
                    cal.epoch += 1

    def horizon(self) -> datetime:
        return self.clock.now() + self.settings.expansion_horizon
