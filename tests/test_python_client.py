"""The unmodified Python fal-client, configured only by the printed export lines, over HTTPS.

Each scenario runs in its own interpreter (fal_client reads FAL_RUN_HOST and
FAL_QUEUE_RUN_HOST once, at import), against ``fal-mock serve --tls`` subprocesses.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server_process import ServerProcess, serve_with_state

SCENARIOS = Path(__file__).parent / "clients" / "python_scenarios.py"


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory):
    # default profile sped up 10x: ~0.05 s queued, 0.2-0.4 s in progress; the client polls every 0.1 s
    yield from serve_with_state(tmp_path_factory, "--tls", "--profile", "default", "--speed", "10")


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    yield from serve_with_state(tmp_path_factory, "--tls", "--profile", "default", "--speed", "0.001", "--workers", "1")


def scenario(server: ServerProcess, name: str) -> dict:
    env = {**os.environ, **server.exports}
    done = subprocess.run([sys.executable, str(SCENARIOS), name], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{name} failed:\n{done.stderr}\n{server.output()}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_wan_output(result: dict, num_images: int = 2) -> None:
    assert len(result["images"]) == num_images
    assert result["seeds"] == [7, 8]
    assert result["actual_prompt"] == "a lighthouse in a storm"
    for image in result["images"]:
        assert (image["width"], image["height"]) == (1024, 768)
        assert image["content_type"] == "image/png"


def test_banner_exports_what_the_python_client_needs(fast_server):
    exports = fast_server.exports
    assert exports["FAL_RUN_HOST"] == f"127.0.0.1:{fast_server.port}"
    assert exports["FAL_QUEUE_RUN_HOST"] == f"127.0.0.1:{fast_server.port}/queue"
    assert Path(exports["SSL_CERT_FILE"]).is_file() and Path(exports["NODE_EXTRA_CA_CERTS"]).is_file()
    assert ":" in exports["FAL_KEY"]


def test_subscribe_with_logs_reports_queue_updates_then_the_result(fast_server):
    seen = scenario(fast_server, "subscribe_logs")
    assert len(seen["enqueued"]) == 1
    kinds = [u["type"] for u in seen["updates"]]
    assert kinds[-1] == "Completed" and "InProgress" in kinds
    assert kinds.index("InProgress") < kinds.index("Completed")
    logs = [m for u in seen["updates"] if u["type"] == "InProgress" for m in u["logs"]]
    assert logs, "IN_PROGRESS updates carry log lines"
    assert seen["updates"][-1]["metrics"]["inference_time"] > 0
    assert_wan_output(seen["result"])
    assert all(c["status"] == 200 and c["png"] for c in seen["images"])
    assert [c["bytes"] for c in seen["images"]] == [i["file_size"] for i in seen["result"]["images"]]


def test_submit_status_and_result(fast_server):
    seen = scenario(fast_server, "submit_status_result")
    assert seen["first"]["type"] in ("Queued", "InProgress")
    assert_wan_output(seen["result"])
    assert seen["completed"]["type"] == "Completed" and seen["completed_logs_is_none"]
    assert seen["again_equal"], "the result is kept: a second GET answers the same body"


def test_iter_events_ends_with_completed(fast_server):
    events = scenario(fast_server, "iter_events")["events"]
    assert events[-1]["type"] == "Completed"
    assert [e["type"] for e in events].count("Completed") == 1


def test_cancel_of_a_queued_request(slow_server):
    seen = scenario(slow_server, "cancel_queued")
    assert seen["before"]["type"] == "Queued"
    assert seen["after"]["type"] == "Completed"
    assert seen["error"] == {"status": 499, "message": "Request cancelled by the client."}


def test_run_returns_the_output_directly(fast_server):
    seen = scenario(fast_server, "run")
    assert_wan_output(seen["result"])
    assert [c["bytes"] for c in seen["images"]] == [i["file_size"] for i in seen["result"]["images"]]


def test_run_with_bad_input_raises_the_422(fast_server):
    seen = scenario(fast_server, "run_422")
    assert seen["status"] == 422 and seen["billable"] == "0"
    assert seen["message"][0]["loc"] == ["body", "prompt"]
    assert seen["message"][0]["type"] == "string_too_short"


def test_queue_with_bad_input_is_accepted_and_the_result_raises_422(fast_server):
    seen = scenario(fast_server, "queue_422")
    assert seen["submitted"] and seen["status"] == 422
    assert seen["message"][0]["loc"] == ["body", "prompt"]


def test_async_client_subscribe_submit_and_run(fast_server):
    seen = scenario(fast_server, "async_flows")
    for key in ("subscribed", "got", "ran"):
        assert_wan_output(seen[key])
    assert seen["updates"][-1]["type"] == "Completed"
    assert seen["status"]["type"] in ("Queued", "InProgress", "Completed")
