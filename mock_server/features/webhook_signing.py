"""What a webhook delivery sends: fal's webhook body and its Ed25519 signature headers, and
the key that signs them (whose public half the JWKS routes serve).  The dispatcher that sends
them is :mod:`mock_server.features.webhooks`.

Payload rules (fal docs, docs.fal.ai/model-endpoints/webhooks; PROTOCOL.md §6):

- ``{"request_id", "gateway_request_id", "status", "payload"}``; ``gateway_request_id``
  equals ``request_id`` (the mock never retries a request on another runner).
- ``status`` is ``"OK"`` when the result GET would answer 2xx, else ``"ERROR"``.
- ``payload`` is the result GET's JSON body (the same answer: it is produced once and
  kept, so file URLs match too).  For ERROR it is the error body,
  e.g. the 422 ``{"detail": [...]}``.
- ``error`` is present only on ERROR: ``"Invalid status code: <code>"``.  fal's current
  page shows no ``error`` key on OK (an older copy showed ``"error": null``); the mock
  follows the current page, so read it with ``body.get("error")``.
- When the result body is not valid JSON: ``payload: null`` and ``payload_error`` says why.
- A cancelled request (PUT .../cancel) completes with the result GET's 499
  ``{"detail": "Request cancelled by the client."}``, so its webhook is ERROR with
  ``"Invalid status code: 499"`` [Inf: fal's docs do not say whether it sends one].

Signature (PROTOCOL.md §6, from public verifiers): Ed25519 over the UTF-8 bytes of
``"{request_id}\\n{user_id}\\n{timestamp}\\n{sha256 hex of the exact body bytes}"``, sent
hex-encoded in ``X-Fal-Webhook-Signature`` with ``X-Fal-Webhook-Request-Id``,
``X-Fal-Webhook-User-Id`` (always :data:`USER_ID`) and ``X-Fal-Webhook-Timestamp``
(unix seconds on the mock's clock, fresh for every attempt).  The key is generated per
server start and kept in memory; its public half is served as a JWKS at
``/_mock/.well-known/jwks.json`` and at ``/_mock/rest/.well-known/jwks.json`` (where the proxy
maps ``https://rest.alpha.fal.ai/.well-known/jwks.json``).
"""
from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# cryptography loads on first use (first delivery or JWKS fetch), not at server start.

#: The ``X-Fal-Webhook-User-Id`` every delivery carries (fal sends the account's user id).
USER_ID = "fal-mock-user"


# -- payload -----------------------------------------------------------------------------
def webhook_body(request_id: str, status_code: int, result_body: bytes) -> bytes:
    """The exact bytes fal POSTs for a request whose result GET answers ``status_code``/``result_body``."""
    ok = 200 <= status_code < 300
    body: dict[str, Any] = {
        "request_id": request_id,
        "gateway_request_id": request_id,
        "status": "OK" if ok else "ERROR",
    }
    try:
        body["payload"] = orjson.loads(result_body)
    except orjson.JSONDecodeError as exc:
        body["payload"] = None
        body["payload_error"] = f"Response payload is not valid JSON: {exc}"
    if not ok:
        body["error"] = f"Invalid status code: {status_code}"
    return orjson.dumps(body)


# -- signing -----------------------------------------------------------------------------
def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """What the signature covers: ``request_id \\n user_id \\n timestamp \\n sha256-hex(body)``."""
    return "\n".join((request_id, user_id, timestamp, hashlib.sha256(body).hexdigest())).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class WebhookSigner:
    """One Ed25519 key: signs messages and describes its public half as a JWK."""

    def __init__(self, private_key: "Ed25519PrivateKey | None" = None) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key = private_key or Ed25519PrivateKey.generate()
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.x = _b64url(raw)
        # RFC 7638 thumbprint: stable for the key, so a kid tells keys apart across restarts.
        canonical = orjson.dumps({"crv": "Ed25519", "kty": "OKP", "x": self.x})
        self.kid = _b64url(hashlib.sha256(canonical).digest())

    def sign(self, message: bytes) -> str:
        """Hex signature of ``message``."""
        return self._key.sign(message).hex()

    def jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid, "use": "sig", "alg": "EdDSA"}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [self.jwk()]}


def signed_headers(signer: WebhookSigner, request_id: str, user_id: str, timestamp: str, body: bytes,
                   *, bad_signature: bool = False) -> dict[str, str]:
    """The headers of one delivery of ``body``, signed by ``signer`` at ``timestamp``.
    ``bad_signature`` sends a signature that does not verify (its first byte flipped)."""
    signature = signer.sign(signed_message(request_id, user_id, timestamp, body))
    if bad_signature:
        signature = f"{int(signature[:2], 16) ^ 0xFF:02x}" + signature[2:]
    return {
        "content-type": "application/json",
        "user-agent": "fal-mock-webhooks",
        "x-fal-webhook-request-id": request_id,
        "x-fal-webhook-user-id": user_id,
        "x-fal-webhook-timestamp": timestamp,
        "x-fal-webhook-signature": signature,
    }
