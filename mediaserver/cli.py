"""Command line: ``mediaserver serve | check-config | tenant | room-token | user |
oauth-client``."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from .config import Config
    from .state.models import Tenant
    from .state.store import Store

__all__ = ["main", "worker_udp_ports"]


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


async def _freeze_startup_objects(app: web.Application) -> None:
    """Move everything the process has built by now (modules, classes, the app: ~85 000
    objects) out of the cyclic garbage collector's reach: it lives as long as the process,
    and every full collection scanned it again (tens of milliseconds in the event loop,
    e.g. in the middle of a join). Objects made later are collected as before."""
    gc.collect()
    gc.freeze()


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    import uvloop
    from aiohttp import web

    from .app import create_app
    from .config import Config
    from .telemetry import Metrics, configure_logging, get_logger

    config = _load(args.config)
    assert isinstance(config, Config)
    configure_logging(config.logging.level, config.logging.format)
    from .memtrace import start_from_env

    start_from_env()  # diagnostics only (MS_DIAG_TRACEMALLOC)
    if args.workers > 1:
        return _serve_workers(args, config)
    app = create_app(config, Metrics(), reuse_port=bool(args.reuse_port))
    app.on_startup.append(_freeze_startup_objects)  # after the cleanup contexts' start
    log = get_logger()
    from .sfu import fastpath

    log.info(
        "starting",
        host=config.server.host,
        port=config.server.port,
        public_url=config.server.effective_public_url,
        ice_addresses=list(config.rtc.ice_addresses),
        state_backend=config.state.backend,
        forwarding=fastpath.PATH,
        forwarding_reason=fastpath.REASON,
    )
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from .sfu.udpmux import UdpPortInUse

    try:
        web.run_app(
            app,
            host=config.server.host,
            port=config.server.port,
            shutdown_timeout=config.server.shutdown_grace_seconds,
            print=lambda msg: log.info("listening", url=config.server.effective_public_url),
            access_log=None,
            handle_signals=True,
            reuse_port=args.reuse_port,
        )
    except UdpPortInUse as exc:
        log.error("start-up failed", error=exc.strerror)
        print(f"start-up error: {exc.strerror}", file=sys.stderr)
        return 2
    log.info("stopped")
    return 0


def cmd_tenant(args: argparse.Namespace) -> int:
    """Tenant administration straight on the configured store (the server may run)."""
    import asyncio

    from .config import Config

    config = _load(args.config)
    assert isinstance(config, Config)

    async def run() -> int:
        from linkapi.secrets_ import parse_api_key
        from linkapi.service import LinkService

        if config.state.backend == "memory":
            print(
                "warning: state.backend is 'memory': nothing is kept after this command",
                file=sys.stderr,
            )
        async with _open_store(config) as store:
            service = LinkService(store, config)
            if args.tenant_command == "create":
                try:
                    tenant, key = await service.create_tenant(
                        args.name,
                        args.guest_policy,
                        rate_limit_per_minute=args.rate_limit,
                        rate_limit_burst=args.burst,
                        recording=args.recording,
                    )
                except ValueError as exc:
                    print(str(exc), file=sys.stderr)
                    return 2
                print(f"tenant {tenant.id} ({tenant.name}) created")
                print("API key (shown once; store it now):")
                print(key)
            elif args.tenant_command == "create-key":
                try:
                    key = await service.create_api_key(args.tenant_id)
                except KeyError:
                    print(f"no tenant {args.tenant_id}", file=sys.stderr)
                    return 1
                print(key)
            elif args.tenant_command == "revoke-key":
                parsed = parse_api_key(args.key)
                key_id = parsed[0] if parsed else args.key
                import time

                if not await store.revoke_api_key(key_id, time.time()):
                    print(f"no API key {key_id}", file=sys.stderr)
                    return 1
                print(f"API key {key_id} revoked")
            elif args.tenant_command == "set-rate-limit":
                current = await store.get_tenant(args.tenant_id)
                if current is None:
                    print(f"no tenant {args.tenant_id}", file=sys.stderr)
                    return 1
                if args.rate_limit is None and args.burst is None:
                    print("give --rate-limit and/or --burst", file=sys.stderr)
                    return 2

                def chosen(given: int | None, now: int | None) -> int | None:
                    return now if given is None else (given or None)  # 0: the configured

                try:
                    tenant = await service.set_rate_limit(
                        args.tenant_id,
                        chosen(args.rate_limit, current.rate_limit_per_minute),
                        chosen(args.burst, current.rate_limit_burst),
                    )
                except ValueError as exc:
                    print(str(exc), file=sys.stderr)
                    return 2
                except KeyError:
                    print(f"no tenant {args.tenant_id}", file=sys.stderr)
                    return 1
                print(f"tenant {tenant.id}: {_rate_limit_text(tenant, config)}")
            elif args.tenant_command == "list":
                for tenant in await store.list_tenants():
                    keys = await store.list_api_keys(tenant.id)
                    active = sum(1 for k in keys if k.revoked_at is None)
                    print(
                        f"{tenant.id}\t{tenant.name}\t{active} active key(s)"
                        f"\t{_rate_limit_text(tenant, config)}"
                    )
                    for k in keys:
                        state = "revoked" if k.revoked_at else "active"
                        print(f"  key {k.id}\t{state}\t{','.join(k.scopes)}")
            return 0

    return asyncio.run(run())


def _rate_limit_text(tenant: Tenant, config: Config) -> str:
    """``rate limit 6000/min, burst 1000``, "(configured)" after a number the tenant
    takes from linkapi.rate_limit_per_minute / rate_limit_burst."""
    cfg = config.linkapi
    per_minute = tenant.rate_limit_per_minute or cfg.rate_limit_per_minute
    if tenant.rate_limit_burst is not None:
        burst = str(tenant.rate_limit_burst)
    elif tenant.rate_limit_per_minute is not None:
        burst = f"{per_minute} (its rate limit)"
    else:
        burst = f"{cfg.rate_limit_burst or per_minute} (configured)"
    configured = " (configured)" if tenant.rate_limit_per_minute is None else ""
    return f"rate limit {per_minute}/min{configured}, burst {burst}"


@contextlib.asynccontextmanager
async def _open_store(config: Config) -> AsyncIterator[Store]:
    """The configured store, as the server opens it (the server may be running)."""
    from .state import create_store

    store = create_store(
        config.state.backend,
        sqlite_path=config.state.effective_sqlite_path,
        redis_url=config.state.redis_target,
    )
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def cmd_room_token(args: argparse.Namespace) -> int:
    """Mint a room token for an ad-hoc room (signed with the server's token key)."""
    import asyncio

    from linkapi.secrets_ import load_token_secret, mint_room_token

    from .config import Config
    from .signalling.messages import Join, ProtocolError

    config = _load(args.config)
    assert isinstance(config, Config)
    try:
        Join(room=args.room, token="-", name=args.name).validate()
    except ProtocolError as exc:
        print(f"invalid room or name: {exc.message}", file=sys.stderr)
        return 2
    if not 10 <= args.ttl <= 31 * 86400:
        print("--ttl must be between 10 seconds and 31 days", file=sys.stderr)
        return 2
    if config.state.backend == "memory" and not config.linkapi.token_secret:
        print(
            "state.backend is 'memory' and linkapi.token_secret is empty: the server's "
            "key exists only inside the server; set linkapi.token_secret",
            file=sys.stderr,
        )
        return 2
    if not config.rooms.adhoc:
        print("warning: rooms.adhoc is false: the server refuses joins by room", file=sys.stderr)

    async def secret() -> bytes:
        if config.linkapi.token_secret:
            return config.linkapi.token_secret.encode()
        async with _open_store(config) as store:
            return await load_token_secret("", store)

    token, _ = mint_room_token(
        asyncio.run(secret()),
        args.room,
        args.name.strip(),
        role=args.role,
        user_id=args.user,
        ttl_seconds=args.ttl,
    )
    print(token)
    return 0


def worker_udp_ports(udp_port: int, explicit: Sequence[int], workers: int) -> list[int]:
    """The media port of each worker: ``explicit[i]``, else ``udp_port + i`` ([] if off)."""
    if explicit:
        if len(explicit) < workers:
            raise ValueError(
                f"rtc.worker_udp_ports lists {len(explicit)} ports for {workers} workers"
            )
        return list(explicit[:workers])
    return [udp_port + i for i in range(workers)] if udp_port else []


def _serve_workers(args: argparse.Namespace, config: object) -> int:
    """N node processes sharing the port (SO_REUSEPORT) and the Redis: one per core."""
    import os
    import signal
    import socket
    import subprocess
    import time

    from .config import Config

    assert isinstance(config, Config)
    if config.state.backend != "redis":
        print(
            '--workers needs state.backend = "redis" (the workers are cluster nodes)',
            file=sys.stderr,
        )
        return 2
    base = config.cluster.node_id or socket.gethostname()
    try:
        ports = worker_udp_ports(config.rtc.udp_port, config.rtc.worker_udp_ports, args.workers)
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    children = []
    for i in range(args.workers):
        env = {**os.environ, "MEDIASERVER_CLUSTER_NODE_ID": f"{base}-w{i}"}
        if ports:  # one media port per worker
            env["MEDIASERVER_RTC_UDP_PORT"] = str(ports[i])
        argv = [sys.executable, "-m", "mediaserver", "serve", "--reuse-port"]
        if args.config:
            argv += ["--config", args.config]
        children.append(subprocess.Popen(argv, env=env))

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        while any(c.poll() is None for c in children):
            time.sleep(0.2)
    finally:
        for c in children:
            if c.poll() is None:
                c.terminate()
    return 0 if all(c.returncode == 0 for c in children) else 1


def cmd_recording_compose(args: argparse.Namespace) -> int:
    """Offline: never the server process (it decodes and encodes)."""
    from pathlib import Path

    from .config import Config
    from .recording.compose import ComposeError, compose

    folder = Path(args.recording_id)
    if not folder.is_dir():
        config = _load(args.config)
        assert isinstance(config, Config)
        folder = Path(config.recording_directory) / args.recording_id
    try:
        summary = compose(folder, Path(args.output))
    except ComposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.output}: {summary['video_tracks']} video tile(s),"
        f" {summary['tracks']} track(s), {summary['duration_seconds']:.2f} s"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mediaserver", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    default_config = os.environ.get("MEDIASERVER_CONFIG")
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", default=default_config, help="path to config.toml")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="node processes sharing the port and Redis (needs state.backend = redis)",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)
    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("config", nargs="?", default=default_config)
    check.add_argument("--print", action="store_true", help="print the effective config")
    check.set_defaults(func=cmd_check_config)
    tenant = sub.add_parser("tenant", help="manage tenants and API keys")
    config_opt = argparse.ArgumentParser(add_help=False)
    config_opt.add_argument("--config", default=default_config, help="path to config.toml")
    tsub = tenant.add_subparsers(dest="tenant_command", required=True)
    create = tsub.add_parser(
        "create", parents=[config_opt], help="create a tenant; prints its first API key last"
    )
    create.add_argument("name")
    create.add_argument(
        "--guest-policy",
        choices=["allow", "lobby", "deny"],
        default="lobby",
        help="the tenant's default guest policy for new links (default: lobby)",
    )
    create.add_argument(
        "--recording",
        choices=["off", "host", "always"],
        default="off",
        help="the tenant's default recording option for new links: hosts may record"
        " (host), every meeting is recorded (always) (default: off)",
    )
    create.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        help="link API requests per minute for this tenant"
        " (default: linkapi.rate_limit_per_minute)",
    )
    create.add_argument(
        "--burst",
        type=int,
        default=None,
        help="requests at once for this tenant (default: linkapi.rate_limit_burst)",
    )
    create_key = tsub.add_parser(
        "create-key", parents=[config_opt], help="another API key for a tenant"
    )
    create_key.add_argument("tenant_id")
    revoke = tsub.add_parser(
        "revoke-key", parents=[config_opt], help="revoke an API key (the key or its id)"
    )
    revoke.add_argument("key")
    limits = tsub.add_parser(
        "set-rate-limit",
        parents=[config_opt],
        help="change a tenant's own rate limit and burst (at once, also on running servers)",
    )
    limits.add_argument("tenant_id")
    limits.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        help="link API requests per minute (0: linkapi.rate_limit_per_minute again;"
        " omitted: unchanged)",
    )
    limits.add_argument(
        "--burst",
        type=int,
        default=None,
        help="requests at once (0: the configured burst again; omitted: unchanged)",
    )
    tsub.add_parser(
        "list", parents=[config_opt], help="list tenants, their rate limits and their keys"
    )
    tenant.set_defaults(func=cmd_tenant)
    room_token = sub.add_parser(
        "room-token",
        parents=[config_opt],
        help="print a signed token to join an ad-hoc room (rooms.adhoc)",
    )
    room_token.add_argument("room", help="the room id the token is for")
    room_token.add_argument("--name", required=True, help="display name of the participant")
    room_token.add_argument(
        "--user", default=None, help="identity (removal bars it); default: the name"
    )
    room_token.add_argument(
        "--role",
        choices=["host", "member", "guest"],
        default="member",
        help="host: may moderate; member: never waits; guest: follows the guest policy",
    )
    room_token.add_argument(
        "--ttl", type=float, default=3600.0, help="seconds until it expires (default 3600)"
    )
    room_token.set_defaults(func=cmd_room_token)
    from linkapi.accounts.cli import add_account_commands

    add_account_commands(sub, config_opt)  # user, oauth-client
    recording = sub.add_parser("recording", help="work with recordings (offline)")
    rsub = recording.add_subparsers(dest="recording_command", required=True)
    compose = rsub.add_parser(
        "compose",
        parents=[config_opt],
        help="decode a recording's files into one MP4: video in a grid, audio mixed",
    )
    compose.add_argument(
        "recording_id",
        help="the recording's id (RE…), a folder under"
        " recording.directory, or a path to the folder",
    )
    compose.add_argument("output", help="the MP4 file to write")
    compose.set_defaults(func=cmd_recording_compose)
    args = parser.parse_args(argv)
    return int(args.func(args))
