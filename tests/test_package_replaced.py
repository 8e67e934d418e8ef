"""A running server keeps working when its installed package is replaced under it.

Following the README in order (``pip install .`` and ``fal-mock serve``, then ``pip install
-e '.[test]'`` in the same environment) removes the files the running server was started
from.  ``serve`` loads every module and data file it would otherwise load on first use right
after start-up (``/_mock/health`` says ``"preloaded": true``), so nothing it still needs can
vanish.  Here the package is copied to a folder of its own, served from there, and the
folder renamed away before the first real call.
"""
from __future__ import annotations

import io
import shutil
import time

import httpx
from PIL import Image

from server_process import REPO_ROOT, ServerProcess
from test_webhooks import Receiver

KEY = {"Authorization": "Key test:secret"}
WAN = "fal-ai/wan-25-preview/image-to-image"


def wait_until(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_server_keeps_serving_after_its_package_folder_is_renamed(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(REPO_ROOT / "mock_server", site / "mock_server",
                    ignore=shutil.ignore_patterns("__pycache__"))
    receiver = Receiver()
    server = ServerProcess(["--profile", "instant"], cwd=tmp_path,
                           env={"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"})
    try:
        url = server.start()
        client = httpx.Client(base_url=url, headers=KEY, timeout=20)
        wait_until(lambda: client.get("/_mock/health").json()["preloaded"], "the server preloads its modules")
        (site / "mock_server").rename(site / "mock_server.old")
        assert not (site / "mock_server").exists()

        # submit with a webhook, then status, result and its images
        submitted = client.post(f"/queue/{WAN}", params={"fal_webhook": receiver.url},
                                json={"prompt": "a cat", "image_urls": ["https://example.com/a.png"], "seed": 3})
        assert submitted.status_code == 200, submitted.text
        urls = submitted.json()
        wait_until(lambda: client.get(urls["status_url"]).json()["status"] == "COMPLETED", "the request completes")
        result = client.get(urls["response_url"])
        assert result.status_code == 200, result.text
        image = result.json()["images"][0]
        drawn = httpx.get(image["url"], timeout=20)
        assert drawn.status_code == 200
        assert Image.open(io.BytesIO(drawn.content)).size == (image["width"], image["height"])
        assert receiver.wait(1), "the webhook was delivered"
        assert b'"status":"OK"' in receiver.calls[0]["body"].replace(b" ", b"")

        # an upload through the CDN stand-in, served back
        token = client.post("/_mock/rest/storage/auth/token?storage_type=fal-cdn-v3", json={}).json()
        uploaded = httpx.post(f"{token['base_url']}/files/upload", content=b"hello",
                              headers={"Authorization": f"Bearer {token['token']}", "Content-Type": "text/plain"})
        assert uploaded.status_code == 200, uploaded.text
        assert httpx.get(uploaded.json()["access_url"]).content == b"hello"

        # the dashboard: its page, a detail page and its static files
        assert client.get("/_mock/").status_code == 200
        assert client.get(f"/_mock/ui/requests/{urls['request_id']}").status_code == 200
        assert client.get("/_mock/ui/static/dashboard.js").status_code == 200
        # a run call, and a 422 worded by the pydantic models
        assert client.post(f"/{WAN}", json={"prompt": "x", "image_urls": ["https://example.com/a.png"]}).status_code == 200
        assert client.post(f"/{WAN}", json={"prompt": "x"}).status_code == 422
        # a catalogued endpoint first used now: its schemas come from the catalogue's data files
        flux = client.post("/fal-ai/flux/dev", json={"prompt": "a lighthouse", "seed": 1})
        assert flux.status_code == 200, flux.text
        assert httpx.get(flux.json()["images"][0]["url"], timeout=20).status_code == 200
        assert client.post("/fal-ai/flux/dev", json={}).status_code == 422
    finally:
        code = server.stop()
        receiver.close()
    assert code == 0, server.output()
    assert "Traceback" not in server.output(), server.output()
