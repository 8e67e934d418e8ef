"""The command line of record and replay (issue 19): the ``serve`` flags ``--record``,
``--upstream``, ``--replay``, ``--replay-strict``, ``--replay-ignore``, and the ``fal-mock
cassette list|show|prune`` command.  See docs/record-replay.md."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("record and replay (docs/record-replay.md)")
    modes = group.add_mutually_exclusive_group()
    modes.add_argument("--record", type=Path, default=None, metavar="DIR",
                       help="forward every fal call to the upstream (fal itself, with FAL_KEY from the "
                            "environment) and write what came back as cassettes into DIR")
    modes.add_argument("--replay", type=Path, default=None, metavar="DIR",
                       help="answer calls recorded in DIR from their cassettes (others: the emulator)")
    group.add_argument("--upstream", default=None, metavar="URL",
                       help="with --record: a server speaking fal's protocol at URL (queue at URL/queue, "
                            "storage at URL/_mock/rest) instead of fal's hosts")
    group.add_argument("--replay-strict", action="store_true",
                       help="with --replay: a call with no recording is answered a 400 naming the closest "
                            "recorded inputs instead of being emulated")
    group.add_argument("--replay-ignore", action="append", default=[], metavar="FIELD",
                       help="with --replay: leave FIELD out when matching inputs (repeatable; dotted names "
                            "reach into objects)")


def settings_fields(args: argparse.Namespace) -> dict:
    """The :class:`~mock_server.settings.Settings` fields of these flags."""
    record, replay = getattr(args, "record", None), getattr(args, "replay", None)
    upstream = getattr(args, "upstream", None)
    if upstream and record is None:
        raise SystemExit("fal-mock: --upstream needs --record")
    if upstream and not upstream.startswith(("http://", "https://")):
        raise SystemExit("fal-mock: --upstream must be an http:// or https:// URL")
    if (getattr(args, "replay_strict", False) or getattr(args, "replay_ignore", [])) and replay is None:
        raise SystemExit("fal-mock: --replay-strict and --replay-ignore need --replay")
    if replay is not None and not replay.is_dir():
        raise SystemExit(f"fal-mock: --replay {replay}: no such folder")
    return {"record_dir": record, "upstream": upstream, "replay_dir": replay,
            "replay_strict": bool(getattr(args, "replay_strict", False)),
            "replay_ignore": tuple(getattr(args, "replay_ignore", []) or ())}


def add_command(commands) -> None:
    """``fal-mock cassette list|show|prune``."""
    cassette = commands.add_parser("cassette", help="list, show or prune recorded cassettes")
    actions = cassette.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one line per recorded request")
    listing.add_argument("dir", type=Path)
    show = actions.add_parser("show", help="print one cassette (by name, or path)")
    show.add_argument("dir", type=Path)
    show.add_argument("name", help="the cassette's name (its file name without .json) or a path")
    prune = actions.add_parser("prune", help="delete files no cassette refers to (old media, unused uploads)")
    prune.add_argument("dir", type=Path)
    prune.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    cassette.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mock_server.features.cassettes import CassetteDir

    shelf = CassetteDir(args.dir)
    if not args.dir.is_dir():
        print(f"fal-mock cassette: {args.dir}: no such folder", file=sys.stderr)
        return 1
    if args.action == "list":
        for cassette in shelf:
            statuses = " > ".join(state["status"] for state in cassette.states) or "-"
            print(f"{cassette.endpoint_id}  {cassette.name}  {cassette.result['status']}  "
                  f"{statuses}  logs={len(cassette.logs)} media={len(cassette.media)}  "
                  f"{cassette.path.relative_to(args.dir)}")
        return 0
    if args.action == "show":
        found = [c for c in shelf if args.name in (c.name, str(c.path), str(c.path.relative_to(args.dir)))]
        if not found:
            print(f"fal-mock cassette: no cassette {args.name!r} in {args.dir}", file=sys.stderr)
            return 1
        for cassette in found:
            print(json.dumps(cassette.data, indent=2, sort_keys=True))
        return 0
    for path in shelf.orphans():
        print(("would delete " if args.dry_run else "deleted ") + str(path.relative_to(args.dir)))
        if not args.dry_run:
            path.unlink()
    return 0
