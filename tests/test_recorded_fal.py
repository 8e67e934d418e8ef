"""fal's protocol as real traffic recorded it (issue 17 points 1, 3, 5, 6, 10, 13, 14), and the
queue calls' bounds (issue 20.1, 20.6, 20.11, 20.14), over real HTTP against both faces: the
fast lane and the FastAPI routes (``lane=False``) answer the same."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx
import pytest

from mock_server.emulator import FalMock
from mock_server.protocol.calls import STATUS_BODIES_KEPT, FalCalls
from mock_server.protocol.request import HttpRequest
from mock_server.protocol.stream import status_events
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings

KEY = {"Authorization": "Key test-id:test-secret"}
APP = "fal-ai/wan-25-preview"
ENDPOINT = f"{APP}/image-to-image"
BODY = {"prompt": "a lighthouse in a storm", "image_urls": ["https://example.com/a.png"], "seed": 7}
EXHAUSTED = (b'{"detail": "User is locked. Reason: Exhausted balance. '
             b'Top up your balance at fal.ai/dashboard/billing."}')


@pytest.fixture
def serve():
    """``serve(lane=True, **settings)``: a running mock and a keyed client for it."""
    servers: list[BackgroundServer] = []

    def start(lane: bool = True, **settings) -> tuple[BackgroundServer, httpx.Client]:
        mock = FalMock(Settings(**{"profile": "instant", **settings}))
        server = BackgroundServer(mock, lane=lane).start()
        servers.append(server)
        return server, httpx.Client(base_url=server.url, headers=KEY, timeout=10)

    yield start
    for server in servers:
        server.stop()
        server.mock.close()


def _submit(client: httpx.Client, **kw) -> httpx.Response:
    return client.post(f"/queue/{ENDPOINT}", json=BODY, **kw)


FACES = pytest.mark.parametrize("lane", [True, False], ids=["lane", "routes"])


# --------------------------------------------------------------------------- issue 17


@FACES
def test_status_result_and_cancel_on_the_full_endpoint_path_answer_405(serve, lane):
    """Point 1: fal answered 405 to a status on the full endpoint path; only owner/alias works."""
    server, client = serve(lane=lane)
    submitted = _submit(client).json()
    rid = submitted["request_id"]
    for url in (submitted["response_url"], submitted["status_url"], submitted["cancel_url"]):
        assert f"/{APP}/requests/{rid}" in url and "image-to-image" not in url
    queue_host = {"Host": f"queue.localhost:{server.port}"}
    for prefix, headers in (("/queue", {}), ("", queue_host)):
        full = f"{prefix}/{ENDPOINT}/requests/{rid}"
        for method, url in (("GET", full + "/status"), ("GET", full), ("PUT", full + "/cancel"),
                            ("GET", full + "/status/stream")):
            answer = client.request(method, url, headers=headers)
            assert (answer.status_code, answer.content) == (405, b'{"detail":"Method Not Allowed"}'), (method, url)
        short = f"{prefix}/{APP}/requests/{rid}"
        polled = client.get(short + "/status", headers=headers)
        assert polled.status_code == 200 and "image-to-image" not in polled.text
        assert client.get(short, headers=headers).status_code == 200


@FACES
def test_submit_and_in_queue_status_carry_null_logs_and_empty_metrics(serve, lane):
    """Point 5: four recordings put ``"logs": null, "metrics": {}`` before ``queue_position``."""
    server, client = serve(lane=lane, profile="default", workers=1)
    server.mock.clock.freeze()
    submitted = _submit(client)
    keys = ["status", "request_id", "response_url", "status_url", "cancel_url", "logs", "metrics", "queue_position"]
    assert list(submitted.json()) == keys
    assert b'"logs":null,"metrics":{},"queue_position":0}' in submitted.content
    status = client.get(submitted.json()["status_url"])
    assert status.status_code == 202 and list(status.json()) == keys
    assert status.json()["logs"] is None and status.json()["metrics"] == {}


@FACES
def test_an_exhausted_balance_fault_answers_fals_403_at_once(serve, lane):
    """Point 3: ``exhausted_balance`` answers like ``http_error``, with fal's recorded body."""
    _, client = serve(lane=lane)
    rule = {"on": "any", "kind": "exhausted_balance", "times": None}
    assert client.post("/_mock/faults?namespace=*", json=rule).status_code == 201
    for answer in (_submit(client), client.post(f"/{ENDPOINT}", json=BODY),
                   client.get(f"/queue/{APP}/requests/0c0c0c0c-0000-4000-8000-000000000000/status")):
        assert (answer.status_code, answer.content) == (403, EXHAUSTED)


@FACES
def test_an_unknown_application_answers_the_same_404_on_both_hosts(serve, lane):
    """Point 6: ``{"detail": "Application 'falsprite' not found"}`` on fal.run and queue.fal.run."""
    _, client = serve(lane=lane)
    expected = (404, b'{"detail": "Application \'falsprite\' not found"}')
    for path in ("/fal-ai/falsprite", "/queue/fal-ai/falsprite", "/fal-ai/falsprite/sub"):
        answer = client.post(path, json=BODY)
        assert (answer.status_code, answer.content) == expected, path
    # a known app without that sub-path keeps the app's own 404
    missing = client.post(f"/{APP}/nope", json=BODY)
    assert (missing.status_code, missing.json()) == (404, {"detail": f"Path /{APP}/nope not found"})


@FACES
def test_the_run_host_without_an_alias_answers_a_plain_404(serve, lane):
    """Point 10: ``POST fal.run/fal-ai`` answers 404 text/plain ``404: Not Found``."""
    _, client = serve(lane=lane)
    answer = client.post("/fal-ai", json=BODY)
    assert (answer.status_code, answer.content) == (404, b"404: Not Found")
    assert answer.headers["content-type"].startswith("text/plain")


@FACES
def test_a_successful_run_carries_fals_run_headers(serve, lane):
    """Point 14: a 200 from the run host carries fal's serving headers; an error does not."""
    _, client = serve(lane=lane)
    answer = client.post(f"/{ENDPOINT}", json=BODY)
    assert answer.status_code == 200
    assert answer.headers["x-robots-tag"] == "noindex"
    assert answer.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert answer.headers["x-fal-served-from"]
    bad = client.post(f"/{ENDPOINT}", json={"prompt": "no images"})
    assert bad.status_code == 422 and "x-robots-tag" not in bad.headers


def test_status_stream_events_are_written_with_fals_spacing(serve):
    """Point 13: fal's stream writes ``{"status": "COMPLETED", ...}`` (json.dumps separators)."""
    _, client = serve()
    submitted = _submit(client).json()
    with client.stream("GET", submitted["status_url"] + "/stream") as stream:
        events = [line for line in stream.iter_lines() if line.startswith("data: ")]
    assert events[-1].startswith('data: {"status": "COMPLETED", "request_id": "')
    assert json.loads(events[-1][len("data: "):])["status"] == "COMPLETED"


# --------------------------------------------------------------------------- issue 20


@FACES
def test_polling_with_a_thousand_hosts_keeps_a_bounded_status_cache(serve, lane):
    """20.1: the COMPLETED body is kept for a few ways of asking, not for every ``Host``."""
    server, client = serve(lane=lane)
    submitted = _submit(client).json()
    rid = submitted["request_id"]
    path = f"/queue/{APP}/requests/{rid}/status"
    for i in range(1000):
        host = f"h{i}.localhost:{server.port}"
        answer = client.get(path, headers={"Host": host})
        assert answer.status_code == 200 and answer.json()["status_url"] == f"http://{host}{path}"
    cache = server.mock.queue.get(rid).status_cache
    assert cache is not None and len(cache) == STATUS_BODIES_KEPT


@FACES
def test_a_submit_past_max_pending_answers_429(serve, lane):
    """20.6: ``--max-pending`` requests waiting or running: the next submit answers 429."""
    server, client = serve(lane=lane, profile="default", workers=1, max_pending=2)
    server.mock.clock.freeze()
    assert [_submit(client).status_code for _ in range(2)] == [200, 200]
    refused = _submit(client)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json() == {"detail": "Too many requests: 2 are already waiting or running. Retry later."}


def test_a_submit_while_the_state_folder_cannot_be_written_answers_503(serve, tmp_path: Path):
    """20.11: the store cannot write: a submit is refused with a clear 503, and accepted again
    once the store can write."""
    server, client = serve(persist=True, state_dir=tmp_path)
    persistence = server.mock.persistence
    assert _submit(client).status_code == 200 and persistence.wait_written()
    db = persistence.folder.db  # as tests/test_state_folder.py: the database cannot grow
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    # writes that need pages: accepted until the writer finds it cannot write them
    assert {_submit(client).status_code for _ in range(200)} <= {200, 503}
    server.mock.files.add_upload("0123456789abcdef-big.bin", os.urandom(64 * 1024), "application/octet-stream")
    assert not persistence.wait_written() and persistence.failure
    for _ in range(2):  # the second submit takes the lane's remembered route
        refused = _submit(client)
        assert refused.status_code == 503 and refused.headers["x-fal-error-type"] == "internal_error"
        assert refused.json()["detail"].startswith("The mock's state folder cannot be written: ")
    db.execute("PRAGMA max_page_count = 1073741823")
    assert persistence.wait_written()
    assert _submit(client).status_code == 200


def test_a_status_stream_open_across_a_reset_ends_cleanly(serve):
    """20.14: the request is gone: the stream closes without an event (chosen), no error."""
    server, client = serve(profile="default", workers=1)
    server.mock.clock.freeze()
    submitted = _submit(client).json()
    with client.stream("GET", submitted["status_url"] + "/stream") as stream:
        lines = stream.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert '"IN_QUEUE"' in first
        assert client.post("/_mock/reset?namespace=*").status_code == 200
        rest = [line for line in lines if line]
    assert rest == []


def test_a_status_stream_in_poll_count_mode_ends_cleanly_after_a_reset():
    """20.14 in ``--polls`` mode (each event counts as a poll): the reset lands between two
    events; the stream ends without raising."""
    mock = FalMock(Settings(profile="instant", polls=5))

    async def scenario() -> list[bytes]:
        calls = FalCalls(mock)
        endpoint = mock.endpoint(ENDPOINT)
        queued = mock.queue.submit(endpoint, endpoint.parse(json.dumps(BODY).encode()))
        scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": [],
                 "scheme": "http"}
        events = status_events(calls, HttpRequest(scope, None), queued, APP, "http://x/queue")
        sent = [await anext(events)]
        mock.reset()
        sent += [event async for event in events]
        return sent

    sent = asyncio.run(scenario())
    assert len(sent) == 1 and b'"IN_QUEUE"' in sent[0]
