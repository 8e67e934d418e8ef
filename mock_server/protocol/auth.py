"""fal's key check (PROTOCOL.md §2): ``Authorization: Key id:secret`` (or a bearer JWT after
``fal auth login``), answered with fal's 401 bodies, the verdict kept per header value."""
from __future__ import annotations

from typing import Any

from mock_server.core import fal_errors
from mock_server.core.answers import Answer
from mock_server.emulator import FalMock

_UNSEEN = object()
_VERDICTS_KEPT = 1024


class KeyCheck:
    """Decides whether a fal call may proceed; one per served emulator."""

    def __init__(self, emulator: FalMock) -> None:
        self.emulator = emulator
        self._cache: tuple[Any, dict[bytes, Answer | None]] = (None, {})

    def denied(self, authorization: bytes | None, proxied: bool) -> Answer | None:
        """None when a call with this raw ``Authorization`` value may proceed, else fal's 401."""
        settings = self.emulator.settings
        if not settings.auth:
            return None
        if authorization is None:
            if proxied:
                return None  # the server proxy adds the server's own key (fal-js libs/proxy)
            return fal_errors.unauthorized("Missing authorization header")
        # A client sends the same header on every poll: remember the verdict per value
        # (per settings object, so a configure() that changes keys starts afresh).
        cache = self._cache
        if cache[0] is not settings:
            cache = self._cache = (settings, {})
        verdict = cache[1].get(authorization, _UNSEEN)
        if verdict is _UNSEEN:
            verdict = self._check(authorization.decode("latin-1"), settings.keys)
            if len(cache[1]) < _VERDICTS_KEPT:
                cache[1][authorization] = verdict
        return verdict  # type: ignore[return-value]

    @staticmethod
    def _check(value: str, keys: tuple[str, ...]) -> Answer | None:
        scheme, _, key = value.partition(" ")
        key = key.strip()
        scheme = scheme.lower()
        if scheme == "bearer" and key and not keys:
            return None  # fal_client sends a JWT this way after `fal auth login`
        if scheme != "key" or not key or ":" not in key:
            return fal_errors.invalid_key_format()
        if keys and key not in keys:
            return fal_errors.unknown_key()
        return None
