"""Run the API (and optionally the worker) in this process."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn

from showup.api.app import create_app
from showup.config import Settings
from showup.db.migrate import upgrade
from showup.jobs.worker import Worker
from showup.runtime import Runtime, build_runtime

log = logging.getLogger("showup")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # httpx logs full URLs at INFO, and URLs can carry tokens: keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)


async def run_worker(runtime: Runtime, stop: asyncio.Event) -> None:
    await Worker(runtime).run_forever(stop)


async def serve(settings: Settings, *, with_worker: bool) -> None:
    runtime = build_runtime(settings)
    await upgrade(runtime.engine)
    app = create_app(runtime)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    stop = asyncio.Event()
    worker_task = asyncio.create_task(run_worker(runtime, stop)) if with_worker else None
    log.info("showup API on http://%s:%d (docs at /docs)", settings.host, settings.port)
    try:
        await server.serve()
    finally:
        stop.set()
        if worker_task:
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
        await runtime.aclose()


async def worker_only(settings: Settings) -> None:
    runtime = build_runtime(settings)
    await upgrade(runtime.engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await run_worker(runtime, stop)
    finally:
        await runtime.aclose()
