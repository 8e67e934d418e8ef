"""The ``fal-mock`` command line (spelling fixed by shared/spec/CLI.md).

``fal-mock serve`` runs the emulator; ``fal-mock env`` prints the ``export`` lines
that point the official clients at a server started with the same flags.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mock_server.cli_flags import FlagParser, check as check_flags
from mock_server import cli_cassette
from mock_server.settings import DEFAULT_PORT, Settings, default_state_dir
from mock_server.core.timing import PROFILES


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the one port for run, queue and control (default {DEFAULT_PORT})")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a local CA kept in the state folder")
    parser.add_argument("--proxy", action="store_true",
                        help="also be an HTTPS_PROXY for fal's hosts on the same port (queue.fal.run, rest.fal.ai, "
                             "*.fal.media...): unmodified clients reach the mock with the printed environment alone")
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
    parser.add_argument("--log-requests", action="store_true",
                        help="print one line per call: method, path, status, request id, milliseconds")
    cli_cassette.add_serve_flags(parser)


def settings_from(args: argparse.Namespace) -> Settings:
    keys = tuple(k.strip() for k in args.keys.split(",") if k.strip()) if args.keys else ()
    # the values were checked when the command line was parsed (cli_flags.check)
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
        proxy=args.proxy,
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
        log_requests=args.log_requests,
        **cli_cassette.settings_fields(args),
        endpoints=tuple(e.strip().strip("/") for e in args.endpoints.split(",") if e.strip().strip("/")),
    )


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


#: The plain server's word on its lines: fal_client builds ``https://{FAL_RUN_HOST}/`` (its
#: client.py RUN_URL_FORMAT), so pasted without --tls they meet a plain port and fail after retries.
PLAIN_HTTP_NOTE = ("# plain HTTP: these lines serve curl and other http:// callers, and the JS client through "
                   "the proxyUrl below; fal_client (Python) always dials https://: "
                   "serve it with `fal-mock serve --tls` (or --proxy)")


def banner_lines(settings: Settings, tls_files=None) -> list[str]:
    """The export lines, then the proxy and health URLs (CLI.md)."""
    from mock_server.shell_env import export_lines

    if settings.proxy:
        lines = _proxy_lines(settings, tls_files)
    else:
        lines = export_lines(settings.host, settings.port, key=settings.client_key, tls=tls_files, queue_prefix=settings.queue_prefix)
        if tls_files is None:
            lines.append(PLAIN_HTTP_NOTE)
        lines.append(f"# JS client (Node): fal.config({{ proxyUrl: {{ url: \"{settings.base_url}/api/fal/proxy\", when: \"always\" }} }})")
    if settings.admin_token:  # the URL that logs a browser in (the token then leaves the address bar)
        from mock_server.web.dashboard_login import login_url

        lines.append(f"# dashboard: {login_url(settings.base_url, settings.admin_token)}")
        lines.append(f"# admin token (for /_mock/): {settings.admin_token}")
    else:
        lines.append(f"# dashboard: {settings.base_url}/_mock/")
    lines.append(f"# health: {settings.base_url}/_mock/health")
    return lines


def _proxy_lines(settings: Settings, tls_files) -> list[str]:
    """``--proxy``: the environment that sends fal's hosts through the mock (docs/proxy.md)."""
    from mock_server.shell_env import proxy_export_lines

    lines = proxy_export_lines(settings.host, settings.port, key=settings.client_key, tls=tls_files)
    lines.append("# Node 20-23: import { setGlobalDispatcher, EnvHttpProxyAgent } from \"undici\"; "
                 "setGlobalDispatcher(new EnvHttpProxyAgent());  Node 24+: export NODE_USE_ENV_PROXY=1")
    return lines


def _tls_files(settings: Settings):
    if not (settings.tls or settings.proxy):
        return None
    from mock_server.server.tls import ensure_tls

    return ensure_tls(settings.state_dir)


def _prepare(args: argparse.Namespace):
    """The settings and TLS files of these flags; None (after one line on stderr) when the
    state folder cannot be used."""
    from mock_server.features.state_folder import StateDirUnusable

    settings = settings_from(args)
    try:
        tls_files = _tls_files(settings)
    except StateDirUnusable as exc:
        print(exc, file=sys.stderr)
        return None
    return settings, tls_files


def _print_banner(settings: Settings, tls_files) -> None:
    print("\n".join(banner_lines(settings, tls_files)), flush=True)


def cmd_env(args: argparse.Namespace) -> int:
    prepared = _prepare(args)
    if prepared is None:
        return 1
    _print_banner(*prepared)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    # pydantic scans every installed distribution's entry points for its plugins when it
    # builds the first model (~10 ms at start); the mock's own process uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from mock_server.features.state_folder import StateDirBusy, StateDirUnusable

    prepared = _prepare(args)
    if prepared is None:
        return 1
    settings, tls_files = prepared
    from mock_server.server.serving import PortUnavailable, serve

    try:  # the banner once the port listens: never for a server that could not start
        serve(settings, tls_files, on_listening=lambda: _print_banner(settings, tls_files))
    except PortUnavailable as exc:  # one line, before any banner
        print(exc.strerror, file=sys.stderr)
        return 3  # as uvicorn's own failed start-up
    except (StateDirBusy, StateDirUnusable) as exc:  # one line saying what is wrong and what to do
        print(exc, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = FlagParser(prog="fal-mock", description="A local emulator of fal.ai's queue and run API (not affiliated with fal.ai).")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the emulator")
    _add_server_flags(serve)
    serve.set_defaults(func=cmd_serve)
    env = commands.add_parser("env", help="print the export lines for a server started with the same flags")
    _add_server_flags(env)
    env.set_defaults(func=cmd_env)
    from mock_server import cli_catalog

    cli_catalog.add_parser(commands)  # fal-mock catalog list|search|show|import (docs/catalog.md)
    cli_cassette.add_command(commands)
    args = parser.parse_args(argv)
    if args.command in ("serve", "env"):
        check_flags({"serve": serve, "env": env}[args.command], args)
    try:
        return args.func(args)
    except BrokenPipeError:  # `fal-mock env | head -1`: the reader has gone, and so do we
        _silence_stdout()
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's flush at exit does not raise again
    (the Python docs' recipe for SIGPIPE, library/signal.html#note-on-sigpipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
