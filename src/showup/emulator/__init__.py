"""Offline provider emulators over one fake world (DESIGN "Layout": ``emulator/``).

Usage::

    world = World(clock)
    app = create_app(world)  # ASGI: Google OAuth + Calendar v3, Microsoft identity v2.0 +
                             # Graph v1.0, and the /_emulator control API
    client_id, client_secret = world.add_oauth_client()  # or provider="microsoft"
    world.add_user("alice@example.com", name="Alice", time_zone="Europe/Berlin")
    refresh_token = world.grant(client_id, "alice@example.com")

See docs/emulator.md for the full Python and HTTP surface.
"""

from showup.emulator.app import create_app, run_standalone
from showup.emulator.faults import Fault, Faults
from showup.emulator.model import InvalidEvent, NotFound
from showup.emulator.world import AuthError, OAuthError, Settings, World

__all__ = [
    "AuthError",
    "Fault",
    "Faults",
    "InvalidEvent",
    "NotFound",
    "OAuthError",
    "Settings",
    "World",
    "create_app",
    "run_standalone",
]
