"""Command line: ``mediaserver serve | check-config``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _load(path: str | None) -> object:
    from .config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import Config, config_to_dict

    config = _load(args.config)
    assert isinstance(config, Config)
    if args.print:
        print(json.dumps(config_to_dict(config), indent=2))
    print(f"configuration OK: {args.config or '(defaults)'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    import uvloop
    from aiohttp import web

    from .app import create_app
    from .config import Config
    from .sfu.guard import install_codec_guard
    from .telemetry import Metrics, configure_logging, get_logger

    config = _load(args.config)
    assert isinstance(config, Config)
    configure_logging(config.logging.level, config.logging.format)
    metrics = Metrics()
    install_codec_guard(metrics)
    app = create_app(config, metrics)
    log = get_logger()
    log.info(
        "starting",
        host=config.server.host,
        port=config.server.port,
        public_url=config.server.effective_public_url,
        ice_addresses=list(config.rtc.ice_addresses),
        state_backend=config.state.backend,
    )
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        app,
        host=config.server.host,
        port=config.server.port,
        shutdown_timeout=config.server.shutdown_grace_seconds,
        print=lambda msg: log.info("listening", url=config.server.effective_public_url),
        access_log=None,
        handle_signals=True,
    )
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mediaserver", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    default_config = os.environ.get("MEDIASERVER_CONFIG")
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", default=default_config, help="path to config.toml")
    serve.set_defaults(func=cmd_serve)
    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("config", nargs="?", default=default_config)
    check.add_argument("--print", action="store_true", help="print the effective config")
    check.set_defaults(func=cmd_check_config)
    args = parser.parse_args(argv)
    return int(args.func(args))
