"""Fixtures for push tests: push allowed over plain HTTP to the reserved ``showup.test``
host (the emulator accepts it, §5 "Test mode"), one app instance shared by the API client
and the emulator's ping and notification deliveries (so its rate limiter is the one under
test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from showup.config import Settings
from tests.conftest import make_settings
from tests.push.graph_support import Graph
from tests.push.support import Pings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, push_allow_http=True)


@pytest.fixture
def app(runtime: Any) -> FastAPI:
    from showup.api.app import create_app

    return create_app(runtime)


@pytest.fixture
async def api(app: FastAPI, tenant: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://showup.test",
        headers={"Authorization": f"Token {tenant.api_key}", "Content-Type": "application/json"},
    ) as client:
        yield client


@pytest.fixture
async def pings(app: FastAPI, world: Any) -> AsyncIterator[Pings]:
    """Google's side: delivers the emulator's queued pings to our app, headers only."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        yield Pings(world, client)


@pytest.fixture
async def graph(app: FastAPI, world: Any) -> AsyncIterator[Graph]:
    """Microsoft's side: delivers the emulator's notifications to our app and sends its
    validation handshakes there (``world.outbox.client``)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://showup.test"
    ) as client:
        yield Graph(world, client)
