"""Where webhooks go (issue 21.2) and what deliveries hold (issue 20.5), over real HTTP.

- a webhook never reaches the mock itself (its port, or any ``/_mock/`` path on this
  machine) nor, unless fetching is allowed, a link-local or cloud-metadata address: the
  delivery log says ``refused`` and why, and nothing is attempted;
- undeliverable webhooks hold neither tasks nor file descriptors while they wait to retry.
"""
from __future__ import annotations

import asyncio
import os
import socket

import httpx
import pytest

from mock_server.emulator import FalMock
from mock_server.features.webhooks import MAX_CONCURRENT
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings
from test_webhooks import GOOD, KEY, Receiver

ENDPOINT = "fal-ai/wan-25-preview/image-to-image"


@pytest.fixture
def server():
    with BackgroundServer(FalMock(Settings(profile="instant"))) as background:
        yield background


def submit(server: BackgroundServer, webhook: str) -> str:
    answer = httpx.post(f"{server.url}/queue/{ENDPOINT}", params={"fal_webhook": webhook}, json=GOOD, headers=KEY)
    assert answer.status_code == 200, answer.text
    return answer.json()["request_id"]


@pytest.mark.parametrize("target", [
    "{url}/_mock/reset", "http://localhost:{port}/_mock/reset", "{url}/_mock/ui/requests/x/cancel",
    "{url}/fal-ai/anything", "http://[::1]:{port}/hook",
])
def test_a_webhook_never_calls_the_mock_itself(server, target):
    target = target.format(url=server.url, port=server.port)
    kept = submit(server, "http://127.0.0.1:9/placeholder")  # a request the reset would forget
    rid = submit(server, target)
    log = [d for d in server.mock.webhooks.wait_for_deliveries(2) if d["request_id"] == rid]
    assert [(d["outcome"], d["status_code"]) for d in log] == [("refused", None)], log
    assert "this fal-mock server" in log[0]["error"]
    assert server.mock.queue.get(kept) is not None, "the mock was reset by its own webhook"
    assert not [e for e in server.mock.journal.entries() if e.path.startswith(("/_mock/", "/fal-ai/anything"))]


def test_a_webhook_to_the_control_api_of_another_local_mock_is_refused(server):
    other = Receiver()
    try:
        rid = submit(server, f"http://127.0.0.1:{other._server.server_address[1]}/_mock/reset")
        (refused,) = [d for d in server.mock.webhooks.wait_for_deliveries(1) if d["request_id"] == rid]
        assert refused["outcome"] == "refused" and "/_mock/" in refused["error"]
        fine = submit(server, f"http://127.0.0.1:{other._server.server_address[1]}/hook")  # the same receiver, another path
        assert other.wait(1)
        assert [d["outcome"] for d in server.mock.webhooks.wait_for_deliveries(2) if d["request_id"] == fine] == ["delivered"]
        assert [call["path"] for call in other.calls] == ["/hook"]
    finally:
        other.close()


@pytest.mark.parametrize(("target", "reason"), [
    ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
    ("http://[fd00:ec2::254]/latest/", "a cloud metadata address"),
    ("http://169.254.10.20:8080/", "a link-local address"),
    ("http://[::ffff:169.254.169.254]/", "a cloud metadata address"),
    ("http://[64:ff9b::a9fe:a9fe]/", "a cloud metadata address"),  # NAT64
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata host"),
    ("http://[/hook", "not a usable URL"),
    ("ftp://example.com/hook", "not an http(s) URL"),
])
def test_link_local_and_metadata_targets_are_refused_without_allow_fetch(server, target, reason):
    rid = submit(server, target)
    (refused,) = [d for d in server.mock.webhooks.wait_for_deliveries(1) if d["request_id"] == rid]
    assert refused["outcome"] == "refused" and refused["status_code"] is None and refused["attempt"] == 1
    assert reason in refused["error"] and refused["next_attempt_at"] is None, refused


def test_allow_fetch_allows_link_local_targets(server):
    server.call(lambda: server.mock.configure(allow_fetch=True))
    pinned = server.call(lambda: server.mock.webhooks._target("http://169.254.169.254/latest/"))
    assert pinned.url == "http://169.254.169.254:80/latest/" and pinned.host_header == "169.254.169.254"
    with pytest.raises(Exception, match="this fal-mock server"):  # never the mock itself
        server.call(lambda: server.mock.webhooks._target(f"{server.url}/_mock/reset"))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once closed


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_undeliverable_webhooks_hold_no_tasks_or_descriptors(server):
    hook = f"http://127.0.0.1:{_closed_port()}/hook"

    async def tasks() -> int:
        return len(asyncio.all_tasks())

    before_tasks, before_fds = server.call(tasks), _open_fds()
    with httpx.Client(base_url=server.url, headers=KEY) as client:
        for _ in range(300):
            assert client.post(f"/queue/{ENDPOINT}", params={"fal_webhook": hook}, json=GOOD).status_code == 200
    log = server.mock.webhooks.wait_for_deliveries(300, timeout=60)
    assert len(log) >= 300 and {d["outcome"] for d in log} == {"retry"}
    # every first attempt failed; the retries wait in the schedule, not in tasks or clients
    assert server.call(tasks) <= before_tasks + 2, "a task per waiting delivery"
    assert _open_fds() <= before_fds + MAX_CONCURRENT, "descriptors held between retries"
