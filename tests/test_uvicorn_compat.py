"""uvicorn's internals are used only on the releases they were proved on.

On any other release the fast lane turns itself off with one warning line naming the
version, and the server runs on uvicorn's public path (its own protocol, start-up and
shutdown); everything still answers.
"""
from __future__ import annotations

import sys

import httpx
import pytest
import uvicorn

from mock_server.server import _uvicorn_compat as uvicorn_compat
from mock_server.server.background import BackgroundServer
from mock_server.emulator import FalMock
from mock_server.settings import Settings
from server_process import ServerProcess

KEY = {"Authorization": "Key test:secret"}
WAN = "fal-ai/wan-25-preview/image-to-image"
GOOD = {"prompt": "x", "image_urls": ["https://example.com/a.png"]}


@pytest.mark.parametrize(("version", "tested"), [
    ("0.53.0", True), ("0.54.0", True), ("0.54.9", True),
    ("0.52.4", False), ("0.29.0", False), ("0.55.0", False), ("1.0.0", False), ("0.55.0rc1", False),
])
def test_the_gate_admits_only_the_tested_releases(version, tested):
    assert uvicorn_compat.internals_tested(version) is tested


def test_the_installed_uvicorn_is_a_tested_one():
    """CI installs the locked uvicorn: the lane is on there (else the lane's tests prove nothing)."""
    assert uvicorn_compat.internals_tested()
    from mock_server.server.fastlane import FastLaneProtocol

    assert uvicorn_compat.http_protocol() is FastLaneProtocol


def queue_round_trip(client: httpx.Client) -> None:
    submitted = client.post(f"/queue/{WAN}", json=GOOD)
    assert submitted.status_code == 200, submitted.text
    urls = submitted.json()
    assert client.get(urls["status_url"]).json()["status"] == "COMPLETED"
    result = client.get(urls["response_url"])
    assert result.status_code == 200 and result.json()["images"]


def test_an_untested_uvicorn_serves_without_the_lane_and_says_so_once(monkeypatch, capsys):
    monkeypatch.setattr(uvicorn, "__version__", "0.52.4")
    monkeypatch.setattr(uvicorn_compat, "_warned", set())
    server = BackgroundServer(FalMock(Settings(profile="instant"))).start()
    try:
        assert server.config.http == "auto", "uvicorn's own protocol"
        with httpx.Client(base_url=server.url, headers=KEY) as client:
            queue_round_trip(client)
        assert uvicorn_compat.http_protocol() == "auto"
    finally:
        server.stop()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "outside the tested range" in line]
    assert warnings == ["fal-mock: uvicorn 0.52.4 is outside the tested range (>= 0.53, < 0.55); "
                        "the fast lane is off and uvicorn's own protocol serves every call"]


UNTESTED_SERVE = "import sys, uvicorn; uvicorn.__version__ = '0.99.0'; from mock_server.cli import main; sys.exit(main())"


def test_serve_on_an_untested_uvicorn_warns_serves_and_exits_0():
    with ServerProcess(["--profile", "instant"], command=[sys.executable, "-c", UNTESTED_SERVE, "serve"]) as server:
        with httpx.Client(base_url=server.url, headers=KEY) as client:
            queue_round_trip(client)
    assert server.returncode == 0, server.output()
    assert "fal-mock: uvicorn 0.99.0 is outside the tested range" in server.output()
    assert "Traceback" not in server.output()
