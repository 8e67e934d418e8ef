"""Webhooks (PROTOCOL.md §6) over real HTTP: a real mock server and a real receiver on 127.0.0.1.

The receiver is a tiny http.server in a thread that records every POST; tests wait on
it with bounded condition waits.  Signatures are checked by a verifier written the way
public fal webhook receivers do it: fetch the JWKS, decode ``x``, Ed25519-verify the
``request_id \\n user_id \\n timestamp \\n sha256(body)`` message, allow ±300 s of skew.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mock_server.server.background import BackgroundServer
from mock_server.emulator import FalMock
from mock_server.settings import Settings
from mock_server.features.webhook_signing import USER_ID
from mock_server.features.webhooks import RETRY_DELAYS, STALE_BY

ENDPOINT = "fal-ai/wan-25-preview/image-to-image"
KEY = {"Authorization": "Key a:b"}
GOOD = {"prompt": "x", "image_urls": ["https://example.com/a.png"]}
BAD = {"prompt": "", "image_urls": ["https://example.com/a.png"]}
WAIT = 10.0  # the longest any test waits for something that should happen
QUIET = 0.5  # how long a test watches for something that must NOT happen


# -- the receiver ----------------------------------------------------------------------
class Receiver:
    """An HTTP server on 127.0.0.1 recording each request; answers 500 to the first ``fail_first``."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._cond:
                    receiver.calls.append({
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    })
                    count = len(receiver.calls)
                    receiver._cond.notify_all()
                status = 500 if count <= receiver.fail_first else 200
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook?token=abc"

    def wait(self, count: int, timeout: float = WAIT) -> bool:
        """True once ``count`` requests have arrived; False after ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.calls) >= count, timeout)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- a receiver-side verifier, as public fal webhook verifiers do it ------------------
def verify(headers: dict[str, str], body: bytes, jwks_url: str, leeway: int = 300) -> str:
    """"ok", "stale" or "bad_signature" for one received webhook."""
    jwks = httpx.get(jwks_url).json()
    request_id = headers["x-fal-webhook-request-id"]
    user_id = headers["x-fal-webhook-user-id"]
    timestamp = headers["x-fal-webhook-timestamp"]
    signature = bytes.fromhex(headers["x-fal-webhook-signature"])
    if abs(int(time.time()) - int(timestamp)) > leeway:
        return "stale"
    message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode("utf-8")
    for key in jwks["keys"]:
        x = key["x"]
        raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
            return "ok"
        except InvalidSignature:
            continue
    return "bad_signature"


# -- fixtures --------------------------------------------------------------------------
@pytest.fixture
def serve():
    """A factory: start a mock (profile "instant" unless told) and an httpx client for it."""
    started: list[tuple[BackgroundServer, httpx.Client]] = []

    def start(profile: str = "instant") -> tuple[BackgroundServer, httpx.Client]:
        server = BackgroundServer(FalMock(Settings(profile=profile))).start()
        client = httpx.Client(base_url=server.url, headers=KEY, timeout=WAIT)
        started.append((server, client))
        return server, client

    yield start
    for server, client in started:
        client.close()
        server.stop()


@pytest.fixture
def receiver():
    """A factory of receivers, closed at the end of the test."""
    made: list[Receiver] = []

    def make(fail_first: int = 0) -> Receiver:
        made.append(Receiver(fail_first))
        return made[-1]

    yield make
    for r in made:
        r.close()


def submit(client: httpx.Client, hook: str, body: dict = GOOD) -> dict:
    response = client.post(f"/queue/{ENDPOINT}", params={"fal_webhook": hook}, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def received_json(call: dict[str, Any]) -> dict[str, Any]:
    return json.loads(call["body"])


# -- payloads --------------------------------------------------------------------------
def test_ok_webhook_carries_the_result_get_body(serve, receiver):
    server, client = serve()
    hook = receiver()
    queued = submit(client, hook.url)
    assert hook.wait(1)
    call = hook.calls[0]
    assert call["method"] == "POST"
    assert call["path"] == "/hook?token=abc"  # fal_webhook was percent-decoded, query kept
    assert call["headers"]["content-type"] == "application/json"
    body = received_json(call)
    assert list(body) == ["request_id", "gateway_request_id", "status", "payload"]
    assert body["request_id"] == body["gateway_request_id"] == queued["request_id"]
    assert body["status"] == "OK"
    result = client.get(queued["response_url"])
    assert result.status_code == 200
    assert body["payload"] == result.json()
    assert body["payload"]["images"][0]["url"].startswith(server.url)


def test_invalid_input_gives_an_error_webhook_with_the_422_body(serve, receiver):
    _, client = serve()
    hook = receiver()
    queued = submit(client, hook.url, BAD)
    assert hook.wait(1)
    body = received_json(hook.calls[0])
    assert body["status"] == "ERROR"
    assert body["error"] == "Invalid status code: 422"
    result = client.get(queued["response_url"])
    assert result.status_code == 422
    assert body["payload"] == result.json()
    assert body["payload"]["detail"][0]["loc"] == ["body", "prompt"]


def test_cancelled_request_gives_an_error_webhook_with_499(serve, receiver):
    server, client = serve("default")
    server.mock.clock.freeze()
    hook = receiver()
    queued = submit(client, hook.url)
    assert client.put(queued["cancel_url"]).status_code == 202
    assert hook.wait(1)
    body = received_json(hook.calls[0])
    assert body["status"] == "ERROR" and body["error"] == "Invalid status code: 499"
    assert body["payload"] == client.get(queued["response_url"]).json() == {"detail": "Request cancelled by the client."}


def test_no_webhook_without_fal_webhook(serve, receiver):
    server, client = serve()
    response = client.post(f"/queue/{ENDPOINT}", json=GOOD)
    client.get(response.json()["status_url"])
    hook = receiver()
    submit(client, hook.url)  # a later request with a webhook: the only delivery
    assert hook.wait(1)
    assert not hook.wait(2, timeout=QUIET)
    assert [d["request_id"] for d in server.mock.webhooks.deliveries] == [received_json(hook.calls[0])["request_id"]]


# -- signatures ------------------------------------------------------------------------
def test_jwks_shape(serve):
    server, client = serve()
    response = client.get("/_mock/.well-known/jwks.json")
    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert {k: key[k] for k in ("kty", "crv", "use", "alg")} == {"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA"}
    assert "=" not in key["x"] and len(base64.urlsafe_b64decode(key["x"] + "=")) == 32
    assert key["kid"]
    # the proxy maps https://rest.alpha.fal.ai/.well-known/jwks.json here; same key
    # (unless an earlier mount claims /_mock/rest/; then only the first URL serves it)
    alt = client.get("/_mock/rest/.well-known/jwks.json")
    if alt.status_code == 200:
        assert alt.json() == response.json()


def test_signature_verifies_with_the_jwks_key(serve, receiver):
    server, client = serve()
    hook = receiver()
    queued = submit(client, hook.url)
    assert hook.wait(1)
    call = hook.calls[0]
    headers = call["headers"]
    assert headers["x-fal-webhook-request-id"] == queued["request_id"]
    assert headers["x-fal-webhook-user-id"] == USER_ID
    assert abs(int(headers["x-fal-webhook-timestamp"]) - server.mock.clock.now()) <= 2
    assert len(headers["x-fal-webhook-signature"]) == 128  # 64 bytes, hex
    assert verify(headers, call["body"], f"{server.url}/_mock/.well-known/jwks.json") == "ok"
    # the signature covers the exact bytes: any change to the body breaks it
    assert verify(headers, call["body"] + b" ", f"{server.url}/_mock/.well-known/jwks.json") == "bad_signature"


def test_bad_signature_switch_fails_verification(serve, receiver):
    server, client = serve()
    hook = receiver()
    response = client.post("/_mock/webhooks/config", json={"bad_signature": True})
    assert response.json() == {"bad_signature": True, "stale_timestamp": False, "duplicate": False}
    assert client.get("/_mock/webhooks/config").json()["bad_signature"] is True
    submit(client, hook.url)
    assert hook.wait(1)
    call = hook.calls[0]
    assert verify(call["headers"], call["body"], f"{server.url}/_mock/.well-known/jwks.json") == "bad_signature"


def test_stale_timestamp_switch_is_detected(serve, receiver):
    server, client = serve()
    hook = receiver()
    server.mock.webhooks.configure(stale_timestamp=True)
    submit(client, hook.url)
    assert hook.wait(1)
    call = hook.calls[0]
    sent = int(call["headers"]["x-fal-webhook-timestamp"])
    assert server.mock.clock.now() - sent >= STALE_BY - 2
    jwks = f"{server.url}/_mock/.well-known/jwks.json"
    assert verify(call["headers"], call["body"], jwks) == "stale"
    # the stale timestamp is the one signed: with no freshness check the signature holds
    assert verify(call["headers"], call["body"], jwks, leeway=10**9) == "ok"


def test_config_rejects_unknown_or_non_boolean_switches(serve):
    server, client = serve()
    assert client.post("/_mock/webhooks/config", json={"nope": True}).status_code == 400
    assert client.post("/_mock/webhooks/config", json={"duplicate": "yes"}).status_code == 400
    assert client.post("/_mock/webhooks/config", content=b"[").status_code == 400
    with pytest.raises(ValueError):
        server.mock.webhooks.configure(nope=True)
    assert client.get("/_mock/webhooks/config").json() == {"bad_signature": False, "stale_timestamp": False, "duplicate": False}


def test_duplicate_switch_delivers_twice_identically(serve, receiver):
    server, client = serve()
    hook = receiver()
    server.mock.webhooks.configure(duplicate=True)
    submit(client, hook.url)
    assert hook.wait(2)
    first, second = hook.calls
    assert first["body"] == second["body"]
    assert first["headers"] == second["headers"]
    assert not hook.wait(3, timeout=QUIET)
    log = server.mock.webhooks.wait_for_deliveries(2)
    assert [(d["attempt"], d["duplicate"], d["outcome"]) for d in log] == [(1, False, "delivered"), (1, True, "delivered")]


# -- retries on the mock's clock ------------------------------------------------------
def test_retries_wait_for_the_frozen_clock(serve, receiver):
    server, client = serve()
    clock, webhooks = server.mock.clock, server.mock.webhooks
    t0 = clock.freeze()
    hook = receiver(fail_first=2)
    queued = submit(client, hook.url)
    assert hook.wait(1)
    log = webhooks.wait_for_deliveries(1)
    assert log[0]["outcome"] == "retry" and log[0]["status_code"] == 500
    assert log[0]["next_attempt_at"] == log[0]["at"] + RETRY_DELAYS[0]
    assert not hook.wait(2, timeout=QUIET)  # frozen: no retry on its own
    clock.advance(RETRY_DELAYS[0] - 1)
    assert not hook.wait(2, timeout=QUIET)  # not yet due
    clock.advance(1)
    assert hook.wait(2)
    assert not hook.wait(3, timeout=QUIET)
    clock.advance(RETRY_DELAYS[1])
    assert hook.wait(3)
    log = webhooks.wait_for_deliveries(3)
    assert [(d["attempt"], d["status_code"], d["outcome"]) for d in log] == [(1, 500, "retry"), (2, 500, "retry"), (3, 200, "delivered")]
    stamps = [int(call["headers"]["x-fal-webhook-timestamp"]) for call in hook.calls]
    assert stamps == [int(t0), int(t0 + RETRY_DELAYS[0]), int(t0 + RETRY_DELAYS[0] + RETRY_DELAYS[1])]
    assert len({call["body"] for call in hook.calls}) == 1  # same body every time, fresh signature
    assert hook.calls[2]["headers"]["x-fal-webhook-request-id"] == queued["request_id"]
    # the log over HTTP
    listed = client.get("/_mock/webhooks").json()
    assert [d["attempt"] for d in listed] == [1, 2, 3]
    assert listed[2]["signature"] == hook.calls[2]["headers"]["x-fal-webhook-signature"]
    assert listed[2]["timestamp"] == hook.calls[2]["headers"]["x-fal-webhook-timestamp"]


def test_full_retry_schedule_then_gives_up(serve, receiver):
    server, client = serve()
    clock, webhooks = server.mock.clock, server.mock.webhooks
    clock.freeze()
    hook = receiver(fail_first=10**6)
    submit(client, hook.url)
    for attempt, delay in enumerate(RETRY_DELAYS, start=1):
        assert webhooks.wait_for_deliveries(attempt)[-1]["outcome"] == "retry"
        clock.advance(delay)
    log = webhooks.wait_for_deliveries(len(RETRY_DELAYS) + 1)
    assert len(log) == len(RETRY_DELAYS) + 1 == 11
    assert log[-1]["outcome"] == "failed" and log[-1]["next_attempt_at"] is None
    gaps = [b["at"] - a["at"] for a, b in zip(log, log[1:])]
    assert gaps == list(RETRY_DELAYS)
    assert 7000 <= sum(RETRY_DELAYS) <= 7400  # "10 times in the span of 2 hours"
    clock.advance(24 * 3600)
    assert not hook.wait(12, timeout=QUIET)


def test_connection_error_is_retried(serve, receiver):
    server, client = serve()
    clock, webhooks = server.mock.clock, server.mock.webhooks
    clock.freeze()
    closed = receiver()
    dead_url = closed.url
    closed.close()  # nothing listens there any more
    submit(client, dead_url)
    log = webhooks.wait_for_deliveries(1)
    assert log[0]["status_code"] is None and log[0]["error"] and log[0]["outcome"] == "retry"
    clock.advance(RETRY_DELAYS[0])
    assert webhooks.wait_for_deliveries(2)[1]["attempt"] == 2


# -- no polling ------------------------------------------------------------------------
def test_webhook_fires_without_any_polling(serve, receiver):
    server, client = serve("default")
    t0 = server.mock.clock.freeze()
    hook = receiver()
    queued = submit(client, hook.url)
    assert not hook.wait(1, timeout=QUIET)  # frozen before completion: nothing yet
    server.mock.clock.advance(10)  # default profile: 0.5 s queue + at most 4 s run
    assert hook.wait(1)
    body = received_json(hook.calls[0])
    assert body["request_id"] == queued["request_id"] and body["status"] == "OK"
    assert int(hook.calls[0]["headers"]["x-fal-webhook-timestamp"]) == int(t0 + 10)


def test_webhook_fires_at_the_nth_poll_in_poll_count_mode(serve, receiver):
    server, client = serve()
    assert client.post("/_mock/config", json={"polls": 2}).status_code == 200
    hook = receiver()
    queued = submit(client, hook.url)
    assert not hook.wait(1, timeout=QUIET)  # only status calls move requests in this mode
    client.get(queued["status_url"])
    assert not hook.wait(1, timeout=QUIET)
    assert client.get(queued["status_url"]).json()["status"] == "COMPLETED"
    assert hook.wait(1)


def test_a_model_error_fault_gives_an_error_webhook(serve, receiver):
    _, client = serve()
    rule = {"on": "submit", "kind": "model_error", "error_type": "content_policy_violation"}
    assert client.post("/_mock/faults?namespace=*", json=rule).status_code == 201
    hook = receiver()
    queued = submit(client, hook.url)
    assert hook.wait(1)
    body = received_json(hook.calls[0])
    result = client.get(queued["response_url"])
    assert body["status"] == "ERROR" and body["error"] == f"Invalid status code: {result.status_code}"
    assert body["payload"] == result.json()
    assert body["payload"]["detail"][0]["type"] == "content_policy_violation"


@pytest.mark.parametrize("route", ["/_mock/webhooks/reset", "/_mock/reset?namespace=*"])
def test_reset_clears_the_log_switches_and_pending_retries(serve, receiver, route):
    server, client = serve()
    webhooks = server.mock.webhooks
    server.mock.clock.freeze()
    webhooks.configure(bad_signature=True)
    hook = receiver(fail_first=1)
    submit(client, hook.url)
    assert webhooks.wait_for_deliveries(1)[0]["outcome"] == "retry"
    assert client.post(route).status_code == 200
    assert webhooks.deliveries == [] and client.get("/_mock/webhooks").json() == []
    assert client.get("/_mock/webhooks/config").json()["bad_signature"] is False
    server.mock.clock.advance(RETRY_DELAYS[0])
    assert not hook.wait(2, timeout=QUIET)  # the pending retry was dropped
