"""``showup demo | serve | worker | migrate | tenant | emulator``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from pydantic import ValidationError

from showup.config import ConfigError, Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise SystemExit(f"showup: invalid configuration:\n{exc}") from None


async def _migrate(settings: Settings) -> None:
    from showup.db.engine import engine_from_settings
    from showup.db.migrate import upgrade

    engine = engine_from_settings(settings)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _tenant_create(settings: Settings, name: str) -> dict[str, str]:
    from showup.clock import SystemClock
    from showup.db.engine import engine_from_settings, make_sessionmaker
    from showup.db.migrate import upgrade
    from showup.tenants import create_tenant

    engine = engine_from_settings(settings)
    try:
        await upgrade(engine)
        async with make_sessionmaker(engine)() as session:
            created = await create_tenant(session, SystemClock(), name)
            await session.commit()
        return {"tenant_id": created.tenant_id, "api_key": created.api_key}
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="showup", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run API, worker and emulator with seeded data")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument(
        "--speed",
        type=float,
        default=None,
        help="how much faster than real time the demo's clock runs (default 20)",
    )
    demo.add_argument("--data-dir", default=None)

    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--with-worker", action="store_true", help="also run the worker")
    sub.add_parser("worker", help="run the worker")
    sub.add_parser("migrate", help="apply database migrations")

    tenant = sub.add_parser("tenant", help="manage tenants")
    tsub = tenant.add_subparsers(dest="tenant_command", required=True)
    tcreate = tsub.add_parser("create", help="create a tenant and print its API key")
    tcreate.add_argument("name")

    emu = sub.add_parser("emulator", help="run the provider emulator alone")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8090)

    args = parser.parse_args(argv)
    try:
        _dispatch(args)
    except ConfigError as exc:
        raise SystemExit(f"showup: {exc}") from None
    except KeyboardInterrupt:
        pass


def _dispatch(args: argparse.Namespace) -> None:
    from showup.server import setup_logging

    if args.command == "emulator":
        from showup.emulator import run_standalone

        setup_logging("INFO")
        run_standalone(args.host, args.port)
        return
    if args.command == "demo":
        from showup.demo import run_demo

        run_demo(port=args.port, speed=args.speed, data_dir=args.data_dir)
        return
    settings = _settings()
    setup_logging(settings.log_level)
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        print("migrations applied")
    elif args.command == "tenant":
        print(json.dumps(asyncio.run(_tenant_create(settings, args.name))))
    elif args.command == "serve":
        from showup.server import serve

        asyncio.run(serve(settings, with_worker=args.with_worker))
    elif args.command == "worker":
        from showup.server import worker_only

        asyncio.run(worker_only(settings))
    else:  # pragma: no cover - argparse enforces the choices
        sys.exit(2)
