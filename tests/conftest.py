"""Shared fixtures. Tests that take ``engine`` (or anything built on it) run twice:
once on SQLite and once on PostgreSQL (a private cluster started for the session).
Tests that take ``platform`` run once per calendar provider (Google, Microsoft)."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from showup.clock import FakeClock
from showup.config import Settings
from showup.db.engine import make_engine
from showup.db.migrate import upgrade
from tests.sync.helpers import PLATFORMS

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
TEST_MASTER_KEY = base64.b64encode(b"k" * 32).decode()


def corpus_path(*parts: str) -> Path:
    """A path inside ../shared/corpus, or a visible skip when the corpus is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"corpus not found at {path} (tests read ../shared/corpus in place)")
    return path


def _run(coro: Any) -> Any:
    """Run a coroutine to completion on a private loop in a thread (session setup)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:
            result["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str | None]:
    url = os.environ.get("SHOWUP_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if os.environ.get("SHOWUP_TEST_SKIP_POSTGRES") and not os.environ.get("CI"):
        yield None
        return
    from tests.support.postgres import start_private_cluster

    try:
        cluster = start_private_cluster()
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield cluster.admin_url
    finally:
        cluster.stop()


async def _make_template(admin_url: str) -> None:
    import asyncpg

    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP DATABASE IF EXISTS showup_template")
        await conn.execute("CREATE DATABASE showup_template")
    finally:
        await conn.close()
    engine = make_engine(admin_url.rsplit("/", 1)[0] + "/showup_template")
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_template(postgres_admin_url: str | None) -> str | None:
    if postgres_admin_url is None:
        return None
    _run(_make_template(postgres_admin_url))
    return postgres_admin_url


async def _pg_admin(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'showup.db'}")
        await upgrade(eng)
        yield eng
        await eng.dispose()
        return
    admin = request.getfixturevalue("pg_template")
    if admin is None:
        pytest.skip("PostgreSQL not available (set SHOWUP_TEST_POSTGRES_URL or install it)")
    name = f"t_{uuid.uuid4().hex[:16]}"
    await _pg_admin(admin, f'CREATE DATABASE "{name}" TEMPLATE showup_template')
    eng = make_engine(admin.rsplit("/", 1)[0] + f"/{name}", pool_size=5)
    try:
        yield eng
    finally:
        await eng.dispose()
        await _pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=PLATFORMS, ids=["google", "microsoft"])
def platform(request: pytest.FixtureRequest) -> str:
    """The calendar provider an end-to-end test runs against: a test that takes
    ``platform`` runs once over the Google emulator and once over the Graph emulator."""
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def world(clock: FakeClock) -> Any:
    from showup.emulator import World

    return World(clock)


@pytest.fixture
def emulator_app(world: Any) -> Any:
    from showup.emulator import create_app

    return create_app(world)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "master_key": TEST_MASTER_KEY,
        "google_api_url": "http://emulator.test/calendar/v3",
        "google_token_url": "http://emulator.test/token",
        "microsoft_graph_url": "http://emulator.test/graph/v1.0",
        "microsoft_login_url": "http://emulator.test/login",
        "public_url": "http://showup.test",
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def runtime(
    engine: AsyncEngine, clock: FakeClock, emulator_app: Any, settings: Settings
) -> AsyncIterator[Any]:
    from showup.runtime import build_runtime

    rt = build_runtime(
        settings, clock=clock, engine=engine, transport=httpx.ASGITransport(app=emulator_app)
    )
    try:
        yield rt
    finally:
        await rt.http.aclose()
        await rt.webhook_http.aclose()


@pytest.fixture
async def tenant(runtime: Any) -> Any:
    from showup.tenants import create_tenant

    async with runtime.sessions() as session:
        created = await create_tenant(session, runtime.clock, "Acme Notes")
        await session.commit()
    return created


@pytest.fixture
async def api(runtime: Any, tenant: Any) -> AsyncIterator[httpx.AsyncClient]:
    from showup.api.app import create_app

    app = create_app(runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://showup.test",
        headers={"Authorization": f"Token {tenant.api_key}", "Content-Type": "application/json"},
    ) as client:
        yield client


@pytest.fixture
def worker(runtime: Any) -> Any:
    from showup.jobs.worker import Worker

    return Worker(runtime, owner="test-worker")
