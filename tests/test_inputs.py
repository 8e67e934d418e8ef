"""Reading image_urls: data URIs, the mock's own files, remote URLs (local server), typed errors."""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from sample_images import bomb_png, data_uri, png

from mock_server.core.answers import Answer
from mock_server.core.endpoint import EndpointEnv
from mock_server.core.files import FileStore
from mock_server.endpoints.fal_app.inputs import ECHO_KEEP_CHARS, read_inputs
from mock_server.endpoints.fal_app.rendering import InputPreview


ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/ok.png": (200, {"content-type": "image/png"}, png()),
    "/small.png": (200, {}, png(100, 500)),
    "/big.png": (200, {}, png(5001, 400)),
    "/huge-file": (200, {}, b"\0" * 3000),
    "/missing.png": (404, {}, b"nope"),
    "/text": (200, {}, b"hello, not an image"),
    "/anim.gif": (200, {}, png(400, 400, "GIF")),
    "/redirect": (302, {"location": "/ok.png"}, b""),
    "/redirect-ftp": (302, {"location": "ftp://127.0.0.1/ok.png"}, b""),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        status, headers, body = ROUTES.get(self.path, (404, {}, b""))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if self.path == "/huge-file":
            self.send_header("transfer-encoding", "chunked")  # no content-length: cap while streaming
            self.end_headers()
            for start in range(0, len(body), 500):
                part = body[start : start + 500]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def logged() -> list[str]:
    return []


@pytest.fixture()
def env(logged: list[str]) -> EndpointEnv:
    return EndpointEnv(
        files=FileStore(),
        file_url=lambda name: f"http://mock.test/files/{name}",
        own_file_name=lambda url: url.rsplit("/", 1)[1] if url.startswith("http://mock.test/files/") else None,
        allow_fetch=True,
        fetch_timeout=5.0,
        fetch_max_bytes=2000,
        log=logged.append,
    )


def read(urls: list[str], env: EndpointEnv) -> list[InputPreview] | Answer:
    return asyncio.run(read_inputs(urls, env))


def error_of(result: Any) -> dict[str, Any]:
    assert isinstance(result, Answer), result
    assert result.status == 422
    (item,) = json.loads(result.body)["detail"]
    assert list(item)[:4] == ["loc", "msg", "type", "url"]
    assert item["url"] == "https://docs.fal.ai/errors#" + item["type"]
    return item


def test_base64_data_uri_is_decoded(env: EndpointEnv) -> None:
    env.fetch_max_bytes = 10**7
    (preview,) = read([data_uri(png(640, 480))], env)  # type: ignore[misc]
    assert preview.thumbnail is not None and max(preview.thumbnail_size) == 128
    assert "640x480" in preview.caption


def test_percent_encoded_data_uri_is_decoded(env: EndpointEnv) -> None:
    env.fetch_max_bytes = 10**7
    uri = "data:image/png," + quote_from_bytes(png(400, 400))
    (preview,) = read([uri], env)  # type: ignore[misc]
    assert preview.thumbnail is not None


def test_malformed_data_uri_is_a_download_error(env: EndpointEnv) -> None:
    item = error_of(read(["data:image/png;base64,@@@not-base64@@@"], env))
    assert (item["type"], item["loc"]) == ("file_download_error", ["body", "image_urls", 0])


def test_oversized_data_uri_is_file_too_large_and_echo_is_truncated(env: EndpointEnv) -> None:
    uri = data_uri(b"\0" * 5000)
    item = error_of(read([uri], env))
    assert item["type"] == "file_too_large" and item["ctx"] == {"max_size": 2000}
    assert item["input"] == f"{uri[:ECHO_KEEP_CHARS]}...({len(uri)} chars)"


def test_fetches_remote_image(server: str, env: EndpointEnv) -> None:
    env.fetch_max_bytes = 10**7
    previews = read([f"{server}/ok.png", f"{server}/redirect"], env)
    assert isinstance(previews, list) and all(p.thumbnail for p in previews)


@pytest.mark.parametrize(
    ("path", "kind", "ctx"),
    [
        ("/missing.png", "file_download_error", None),
        ("/redirect-ftp", "file_download_error", None),
        ("/text", "image_load_error", None),
        # a real image in a format Wan does not take: fal's documented unsupported_image_format
        ("/anim.gif", "unsupported_image_format", {"supported_formats": [".jpg", ".jpeg", ".png", ".webp", ".bmp"]}),
        ("/small.png", "image_too_small", {"min_height": 384, "min_width": 384}),
        ("/big.png", "image_too_large", {"max_height": 5000, "max_width": 5000}),
        ("/huge-file", "file_too_large", {"max_size": 2000}),
    ],
)
def test_remote_failures_are_typed(server: str, env: EndpointEnv, path: str, kind: str, ctx: Any) -> None:
    env.fetch_max_bytes = 2000 if path == "/huge-file" else 10**7
    item = error_of(read([f"{server}/ok.png", f"{server}{path}"], env))
    assert item["type"] == kind
    assert item["loc"] == ["body", "image_urls", 1]
    assert item.get("ctx") == ctx
    assert item["input"] == f"{server}{path}"


def test_unreachable_host_is_a_download_error(env: EndpointEnv) -> None:
    item = error_of(read(["http://127.0.0.1:9/x.png"], env))
    assert item["type"] == "file_download_error"


def test_bad_scheme_is_a_download_error(env: EndpointEnv) -> None:
    for url in ["ftp://example.com/a.png", "file:///etc/passwd", "not a url"]:
        assert error_of(read([url], env))["type"] == "file_download_error"


def test_remote_url_is_not_fetched_when_fetching_is_off(server: str, env: EndpointEnv, logged: list[str]) -> None:
    env.allow_fetch = False
    (preview,) = read([f"{server}/missing.png"], env)  # would 404 if fetched
    assert preview.thumbnail is None
    assert preview.caption == "not fetched: 127.0.0.1/missing.png"
    assert len(logged) == 1 and "not fetched" in logged[0]


def test_own_files_are_read_from_the_store(env: EndpointEnv) -> None:
    env.fetch_max_bytes = 10**7
    env.files.add_upload("in.png", png(500, 500), "image/png")
    (preview,) = read(["http://mock.test/files/in.png"], env)  # type: ignore[misc]
    assert preview.thumbnail is not None
    assert error_of(read(["http://mock.test/files/gone.png"], env))["type"] == "file_download_error"


def test_decompression_bomb_is_refused_before_decoding(env: EndpointEnv) -> None:
    env.fetch_max_bytes = 10**7
    for width, height in [(6000, 400), (100_000, 100_000)]:
        item = error_of(read([data_uri(bomb_png(width, height))], env))
        assert item["type"] == "image_too_large"


def test_only_the_first_two_entries_are_read(env: EndpointEnv) -> None:
    env.fetch_max_bytes = 10**7
    good = data_uri(png())
    previews = read([good, good, "ftp://never-looked-at"], env)
    assert isinstance(previews, list) and len(previews) == 2
