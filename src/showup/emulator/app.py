"""The emulator ASGI app: Google OAuth, Calendar v3 and the control API over one world."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.types import ASGIApp

from showup.emulator.world import World


def create_app(world: World) -> ASGIApp:
    """Mount every emulated surface over ``world``; see docs/emulator.md."""
    app = Starlette(routes=[])
    app.state.world = world
    return app


def run_standalone(host: str, port: int) -> None:
    """Serve an empty world on real time (``showup emulator --port N``)."""
    import uvicorn

    from showup.clock import SystemClock

    uvicorn.run(create_app(World(SystemClock())), host=host, port=port, log_level="info")
