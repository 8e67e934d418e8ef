"""The ``fal-mock`` command line (spelling fixed by shared/spec/CLI.md).

``fal-mock serve`` runs the emulator; ``fal-mock env`` prints the ``export`` lines
that point the official clients at a server started with the same flags.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mock_server.settings import DEFAULT_PORT, Settings, default_state_dir
from mock_server.core.timing import PROFILES


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the one port for run, queue and control (default {DEFAULT_PORT})")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a local CA kept in the state folder")
    parser.add_argument("--profile", choices=PROFILES, default="default", help="timing profile (default: default)")
    parser.add_argument("--speed", type=float, default=1.0, help="divide every emulated time by this factor (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="emulated runners working in parallel (default 2)")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--keys", default=None, help="comma-separated keys (id:secret) accepted; default: any well-formed key")
    auth.add_argument("--no-auth", action="store_true", help="accept requests without an Authorization header")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="keep requests, results, uploads and the TLS CA in DIR across restarts (SQLite + files); "
                             "without it state is in memory and the CA lives in $FAL_MOCK_STATE_DIR or ~/.local/state/fal-mock")
    parser.add_argument("--persist", action="store_true",
                        help="persist in the default state folder (implied by --state-dir)")
    parser.add_argument("--allow-fetch", action="store_true", help="fetch remote image_urls (http/https only, with timeout and size cap)")
    parser.add_argument("--validation", choices=("documented", "published"), default="documented",
                        help="input rules: the model page's (documented, default) or the published schema's")
    parser.add_argument("--max-requests", type=int, default=10_000, help="finished requests kept before the oldest are forgotten")
    parser.add_argument("--admin-token", default=os.environ.get("FAL_MOCK_ADMIN_TOKEN"),
                        help="token for the /_mock/ control API (Authorization: Bearer T or X-Fal-Mock-Admin-Token: T); "
                             "required off loopback: generated and printed when not given (or empty)")
    parser.add_argument("--allowed-hosts", default="",
                        help="comma-separated Host names answered besides loopback and fal's own hosts "
                             "(the DNS-rebinding guard; off loopback, when given, only these)")
    parser.add_argument("--proxy-cors", default="", metavar="ORIGIN,...",
                        help="browser origins (http://host:port, or *) whose pages may call the JS proxy "
                             "/api/fal/proxy besides loopback pages; others are refused (403)")
    parser.add_argument("--max-pending", type=int, default=10_000,
                        help="requests waiting or running at once; a submit beyond is answered 429 (default 10000)")
    parser.add_argument("--request-head-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="close a connection that sends no complete request head within this time (default 10)")
    parser.add_argument("--journal-size", type=int, default=1000, help="calls kept in the request journal (default 1000)")
    parser.add_argument("--endpoints", default="", metavar="ID,...",
                        help="answer only these endpoint ids (others get fal's 404); default: every catalogued endpoint")
    parser.add_argument("--polls", type=int, default=None, metavar="N",
                        help="complete each request on its Nth status call instead of by the clock")


def settings_from(args: argparse.Namespace) -> Settings:
    keys = tuple(k.strip() for k in args.keys.split(",") if k.strip()) if args.keys else ()
    if args.workers < 1:
        raise SystemExit("fal-mock: --workers must be at least 1")
    if args.speed <= 0:
        raise SystemExit("fal-mock: --speed must be greater than 0")
    if not args.request_head_timeout > 0:
        raise SystemExit("fal-mock: --request-head-timeout must be greater than 0")
    if args.max_pending < 1 or args.max_requests < 1:
        raise SystemExit("fal-mock: --max-pending and --max-requests must be at least 1")
    if args.polls is not None and args.polls < 1:
        raise SystemExit("fal-mock: --polls must be at least 1")
    # An empty token (``FAL_MOCK_ADMIN_TOKEN=`` in a compose or CI file, ``--admin-token ''``)
    # is no token: off loopback one is generated, never an open control API.
    admin_token = args.admin_token if (args.admin_token or "").strip() else None
    if admin_token is None and not _is_loopback(args.host):
        import secrets

        admin_token = secrets.token_urlsafe(24)  # never leave the control API open off loopback
    return Settings(
        admin_token=admin_token,
        host=args.host,
        port=args.port,
        tls=args.tls,
        profile=args.profile,
        speed=args.speed,
        workers=args.workers,
        auth=not args.no_auth,
        keys=keys,
        state_dir=args.state_dir or default_state_dir(),
        # issue 6 / CLI.md: an explicit --state-dir is the opt-in to persistence
        persist=args.persist or (args.state_dir is not None and getattr(args, "command", "serve") == "serve"),
        allow_fetch=args.allow_fetch,
        validation=args.validation,
        max_requests=args.max_requests,
        max_pending=args.max_pending,
        request_head_timeout=args.request_head_timeout,
        allowed_hosts=tuple(h.strip() for h in args.allowed_hosts.split(",") if h.strip()),
        proxy_cors=tuple(o.strip().rstrip("/") for o in args.proxy_cors.split(",") if o.strip()),
        journal_size=args.journal_size,
        polls=args.polls,
        endpoints=tuple(e.strip().strip("/") for e in args.endpoints.split(",") if e.strip().strip("/")),
    )


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


def banner_lines(settings: Settings, tls_files=None) -> list[str]:
    """The export lines, then the proxy and health URLs (CLI.md)."""
    from mock_server.shell_env import export_lines

    lines = export_lines(settings.host, settings.port, key=settings.client_key, tls=tls_files, queue_prefix=settings.queue_prefix)
    lines.append(f"# JS client (Node): fal.config({{ proxyUrl: {{ url: \"{settings.base_url}/api/fal/proxy\", when: \"always\" }} }})")
    lines.append(f"# dashboard: {settings.base_url}/_mock/")
    if settings.admin_token:
        lines.append(f"# admin token (for /_mock/): {settings.admin_token}")
    lines.append(f"# health: {settings.base_url}/_mock/health")
    return lines


def _tls_files(settings: Settings):
    if not settings.tls:
        return None
    from mock_server.server.tls import ensure_tls

    return ensure_tls(settings.state_dir)


def _print_banner(args: argparse.Namespace):
    """The settings and TLS files of these flags, after printing the banner; None (after one
    line on stderr) when the state folder cannot be used."""
    from mock_server.features.state_folder import StateDirUnusable

    settings = settings_from(args)
    try:
        tls_files = _tls_files(settings)
    except StateDirUnusable as exc:
        print(exc, file=sys.stderr)
        return None
    for line in banner_lines(settings, tls_files):
        print(line)
    return settings, tls_files


def cmd_env(args: argparse.Namespace) -> int:
    return 0 if _print_banner(args) is not None else 1


def cmd_serve(args: argparse.Namespace) -> int:
    # pydantic scans every installed distribution's entry points for its plugins when it
    # builds the first model (~10 ms at start); the mock's own process uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from mock_server.features.state_folder import StateDirBusy, StateDirUnusable

    started = _print_banner(args)
    if started is None:
        return 1
    settings, tls_files = started
    sys.stdout.flush()
    from mock_server.server.serving import serve

    try:
        serve(settings, tls_files)
    except (StateDirBusy, StateDirUnusable) as exc:  # one line saying what is wrong and what to do
        print(exc, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fal-mock", description="A local emulator of fal.ai's queue and run API (not affiliated with fal.ai).")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the emulator")
    _add_server_flags(serve)
    serve.set_defaults(func=cmd_serve)
    env = commands.add_parser("env", help="print the export lines for a server started with the same flags")
    _add_server_flags(env)
    env.set_defaults(func=cmd_env)
    from mock_server import cli_catalog

    cli_catalog.add_parser(commands)  # fal-mock catalog list|search|show|import (docs/catalog.md)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
