"""The rules a flag value must meet, checked once the command line is parsed.

A value that breaks one is refused as argparse refuses an unknown choice, with exit status 2,
but in one line naming the flag and the reason (:class:`FlagParser`, for argparse's own
refusals too), before anything is printed or bound
(``--port 99999`` used to print 99999 and listen elsewhere; ``--keys nocolon`` started a
server that refused the very key it printed).
"""
from __future__ import annotations

import argparse
import math
from typing import Callable


class FlagParser(argparse.ArgumentParser):
    """argparse's parser whose refusals are one line (argparse's own print the whole usage,
    a dozen lines in front of the reason); the exit status stays argparse's 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _at_least(name: str, low: int) -> Callable[[object], str | None]:
    return lambda value: None if value is None or value >= low else f"{name} must be at least {low}"


def _positive(name: str) -> Callable[[object], str | None]:
    return lambda value: None if math.isfinite(value) and value > 0 else f"{name} must be greater than 0"


def _port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else f"--port must be between 1 and 65535, not {value}"


def _keys(value: str | None) -> str | None:
    """Each key is ``id:secret`` (what fal's ``Authorization: Key id:secret`` carries and the
    key check requires, protocol/auth.py), both halves non-empty."""
    if value is None:
        return None
    keys = [k.strip() for k in value.split(",") if k.strip()]
    if not keys:
        return "--keys needs at least one key of the form id:secret"
    for key in keys:
        key_id, colon, secret = key.partition(":")
        if not (colon and key_id and secret) or any(ch.isspace() for ch in key):
            return f"--keys: {key!r} is not of the form id:secret (fal keys look like abc123:def456)"
    return None


#: (the parsed attribute, its rule): the rule returns the reason a value is refused, or None
RULES: tuple[tuple[str, Callable[[object], str | None]], ...] = (
    ("port", _port),
    ("keys", _keys),
    ("workers", _at_least("--workers", 1)),
    ("speed", _positive("--speed")),
    ("request_head_timeout", _positive("--request-head-timeout")),
    ("max_pending", _at_least("--max-pending", 1)),
    ("max_requests", _at_least("--max-requests", 1)),
    ("journal_size", _at_least("--journal-size", 0)),
    ("polls", _at_least("--polls", 1)),
)


def refusal(args: argparse.Namespace) -> str | None:
    """The first reason a flag of ``args`` is refused, or None when every value is usable."""
    for attribute, rule in RULES:
        if hasattr(args, attribute):
            reason = rule(getattr(args, attribute))
            if reason is not None:
                return reason
    if getattr(args, "proxy", False) and getattr(args, "tls", False):
        return ("--proxy serves plain HTTP CONNECT (HTTPS_PROXY=http://...): drop --tls, "
                "the proxy gives clients their https:// hosts")
    return None


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with status 2 and one line saying why when a value is refused."""
    reason = refusal(args)
    if reason is not None:
        parser.error(reason)
