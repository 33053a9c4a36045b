"""Run the API (and optionally the worker) in this process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
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


# Net allocations of container objects between two collections of the youngest
# generation (CPython's default: 700). A sync allocates a few dicts, lists and dataclasses
# per event, most freed by reference counting, and the default made the collector run
# about 2,000 times in an 8.9 s drain of the ingest benchmark (300 calendars x 200 events,
# one process), 1.1 s of it. With 20,000 and the startup heap frozen: 0.1 s, CPU 8.9 to
# 8.2 s, events/s 7,000 to 7,700; peak RSS 143 to 160 MiB (garbage cycles wait longer,
# bounded by the threshold). 5,000 and 10,000 sat in between.
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """For a long-running service process, once it is set up (imports, app, engine):
    collect, then freeze what is left (``gc.freeze``: the startup heap is not scanned
    again by every full collection), and collect the youngest generation every
    :data:`GC_GEN0_THRESHOLD` allocations instead of 700."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


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
    tune_gc()
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
    tune_gc()
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
