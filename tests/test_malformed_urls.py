"""URLs ``urlsplit`` refuses (issue 20.13): each is a clear 4xx, never a 500, and the
dashboard keeps rendering the requests that carried them."""
from __future__ import annotations

import httpx
import pytest

from mock_server.emulator import FalMock
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings

APP = "fal-ai/wan-25-preview/image-to-image"
KEY = {"Authorization": "Key a:b"}
GOOD = "https://example.com/a.png"
MALFORMED = ["http://[", "http://[::1", "http://[x]/a.png", "https://[fe80::1%zz/a.png"]


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(FalMock(Settings(profile="instant"))) as background:
        yield background


def _download_error(answer: httpx.Response, index: int) -> None:
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["type"] == "file_download_error" and problem["loc"] == ["body", "image_urls", index]


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_image_url_is_a_typed_422_on_run_and_result(server, url):
    _download_error(httpx.post(f"{server.url}/{APP}", json={"prompt": "x", "image_urls": [url]}, headers=KEY), 0)
    submitted = httpx.post(f"{server.url}/queue/{APP}", json={"prompt": "x", "image_urls": [GOOD, url]}, headers=KEY)
    assert submitted.status_code == 200
    _download_error(httpx.get(submitted.json()["response_url"], headers=KEY), 1)


def test_a_port_out_of_range_stays_an_ordinary_remote_input(server):
    # urlsplit takes it (only .port refuses it): drawn as a labelled tile, as before (test_pytest_plugin)
    answer = httpx.post(f"{server.url}/{APP}", json={"prompt": "x", "image_urls": ["http://a:99999/x.png"]}, headers=KEY)
    assert answer.status_code == 200, answer.text


def test_the_dashboard_renders_requests_with_malformed_urls(server):
    ids = []
    for url in MALFORMED + ["http://a:99999/x.png"]:
        submitted = httpx.post(f"{server.url}/queue/{APP}", params={"fal_webhook": url},
                               json={"prompt": "x", "image_urls": [url]}, headers=KEY)
        ids.append(submitted.json()["request_id"])
        httpx.post(f"{server.url}/{APP}", json={"prompt": "x", "image_urls": [url]}, headers=KEY)
    for path in ["/_mock/", "/_mock/ui/rows"] + [f"/_mock/ui/requests/{rid}" for rid in ids]:
        page = httpx.get(server.url + path)
        assert page.status_code == 200, (path, page.text[:300])


def test_a_malformed_proxy_target_is_a_412(server):
    for target in ("https://[", "https://[::1/fal-ai/x", "https://queue.fal.run:99999/x"):
        answer = httpx.post(f"{server.url}/api/fal/proxy", json={}, headers={"x-fal-target-url": target, **KEY})
        assert answer.status_code == 412 and "Invalid target URL" in answer.json()["detail"], (target, answer.text)


def test_a_non_ascii_upload_signature_is_a_403(server):
    started = httpx.post(f"{server.url}/_mock/rest/storage/upload/initiate",
                         json={"file_name": "a.png", "content_type": "image/png"}, headers=KEY).json()
    bare = started["upload_url"].split("?", 1)[0]
    for signature in ("%C3%A9", "%E2%9C%93" * 16, "%FF", "%00"):
        answer = httpx.put(f"{bare}?signature={signature}", content=b"x")
        assert answer.status_code == 403 and answer.json()["detail"] == "Invalid or expired upload URL", answer.text
    assert httpx.put(started["upload_url"], content=b"x").status_code == 200  # the real signature still works
