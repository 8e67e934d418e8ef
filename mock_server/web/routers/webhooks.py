"""Webhook routes: the JWKS that verifies every signature, the delivery log and the switches
(:mod:`mock_server.features.webhooks` is the dispatcher behind them).

- ``GET /_mock/.well-known/jwks.json``       the public key, open even with an admin token (also
                                             under ``/_mock/rest/``, where the proxy maps
                                             ``rest.alpha.fal.ai``; open like storage)
- ``GET /_mock/webhooks``                    every delivery attempt, oldest first
- ``GET|POST /_mock/webhooks/config``        the test switches (bad_signature, stale_timestamp, duplicate)
- ``POST /_mock/webhooks/reset``             forget the log, switches off, drop pending retries
"""
from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from mock_server.core.paths import REST_PREFIX
from mock_server.emulator import FalMock
from mock_server.web.control import control_router, ok, only
from mock_server.web.deps import get_emulator
from mock_server.web.responses import RawResponse

_JWKS = "/_mock/.well-known/jwks.json"
_REST_JWKS = REST_PREFIX + ".well-known/jwks.json"


class WebhookSwitches(BaseModel):
    """``POST /_mock/webhooks/config``: the switches to set; those not sent stay as they are."""

    model_config = ConfigDict(strict=True, extra="forbid")
    bad_signature: bool = False
    stale_timestamp: bool = False
    duplicate: bool = False


router = APIRouter()
_guarded = control_router(prefix="/_mock/webhooks", tags=["webhooks"])
# the public key is public (issue 21.11): open, so a verifier can read it off loopback too
_keys = control_router(admin=False, tags=["webhooks"])
_rest_keys = control_router(admin=False, include_in_schema=False)


def _jwks(mock: FalMock) -> RawResponse:
    # The key changes at every server start: ask verifiers not to keep it.
    return RawResponse(200, orjson.dumps(mock.webhooks.signer.jwks()), [(b"cache-control", b"no-cache")])


@_keys.get(_JWKS)
async def jwks(mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """The JWKS with the public Ed25519 key that verifies every webhook signature."""
    return _jwks(mock)


@_rest_keys.get(_REST_JWKS)
async def rest_jwks(mock: FalMock = Depends(get_emulator)) -> RawResponse:
    return _jwks(mock)


@_guarded.get("")
async def deliveries(mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """Every delivery attempt, oldest first (the last 1,000)."""
    return ok(mock.webhooks.deliveries)


@_guarded.get("/config")
async def switches(mock: FalMock = Depends(get_emulator)) -> RawResponse:
    return ok(mock.webhooks.switches())


@_guarded.post("/config")
async def set_switches(change: WebhookSwitches | None = None, mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """Set some switches; answers all of them."""
    changes = change.model_dump(exclude_unset=True) if change is not None else {}
    return ok(mock.webhooks.configure(**changes))


@_guarded.post("/reset")
async def reset(mock: FalMock = Depends(get_emulator)) -> RawResponse:
    mock.webhooks.reset()
    return ok({"status": "ok"})


_keys.add_api_route(_JWKS, jwks, methods=["HEAD"], include_in_schema=False)
_rest_keys.add_api_route(_REST_JWKS, rest_jwks, methods=["HEAD"])
only(_keys, _JWKS, ("GET", "HEAD"))
only(_rest_keys, _REST_JWKS, ("GET", "HEAD"))
for _path, _allowed in (("", ("GET",)), ("/config", ("GET", "POST")), ("/reset", ("POST",))):
    only(_guarded, _path, _allowed)

router.include_router(_keys)
router.include_router(_rest_keys)
router.include_router(_guarded)
