"""Offline uploads (PROTOCOL.md §3.8) with the real fal_client 1.0.3 and @fal-ai/client 1.10.1.

The Python client is pointed at an in-process mock by assigning ``fal_client.client.REST_URL``
and ``CDN_URL`` (PROTOCOL.md §8.1 B); fresh ``SyncClient``/``AsyncClient`` objects are made
per test because the CDN token manager captures ``REST_URL`` when it is first built.
The JS client runs in ``node`` through the mock's proxy route (§8.2 C).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import fal_client
import fal_client.client as fal_client_module
import httpx
import pytest
from PIL import Image

from mock_server.features import storage
from mock_server.server.background import BackgroundServer
from mock_server.emulator import FalMock
from mock_server.settings import Settings

KEY_VALUE = "test-id:test-secret"
KEY = {"Authorization": f"Key {KEY_VALUE}"}
WAN = "fal-ai/wan-25-preview/image-to-image"
JS_DIR = Path(__file__).resolve().parent / "js"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def serve():
    """Start mocks (``--profile instant`` plus overrides); stopped after the test."""
    servers: list[BackgroundServer] = []

    def start(**settings) -> tuple[BackgroundServer, httpx.Client]:
        server = BackgroundServer(FalMock(Settings(**{"profile": "instant", **settings}))).start()
        servers.append(server)
        return server, httpx.Client(base_url=server.url, headers=KEY, timeout=30)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def mock(serve):
    return serve()


@pytest.fixture
def point_client(monkeypatch):
    """Point fal_client's upload hosts at a server (approach B) and return fresh clients."""

    def point(server: BackgroundServer) -> tuple[fal_client.SyncClient, fal_client.AsyncClient]:
        monkeypatch.setattr(fal_client_module, "REST_URL", f"{server.url}/_mock/rest")
        monkeypatch.setattr(fal_client_module, "CDN_URL", f"{server.url}/_mock/cdn")
        return fal_client.SyncClient(key=KEY_VALUE), fal_client.AsyncClient(key=KEY_VALUE)

    return point


@pytest.fixture
def small_multipart(monkeypatch):
    """fal_client's multipart thresholds made small (module globals read at call time)."""
    monkeypatch.setattr(fal_client_module, "MULTIPART_THRESHOLD", 64 * 1024)
    monkeypatch.setattr(fal_client_module, "MULTIPART_CHUNK_SIZE", 20 * 1024)


def png(width: int = 512, height: int = 512, colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def fetch(url: str) -> httpx.Response:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return response


def token(client: httpx.Client) -> dict:
    response = client.post("/_mock/rest/storage/auth/token?storage_type=fal-cdn-v3", json={})
    assert response.status_code == 200, response.text
    return response.json()


def run_wan(client: httpx.Client, body: dict) -> httpx.Response:
    """Submit on the queue, wait for COMPLETED, return the result response."""
    submitted = client.post(f"/queue/{WAN}", json=body)
    assert submitted.status_code == 200, submitted.text
    urls = submitted.json()
    deadline = time.monotonic() + 30
    while client.get(urls["status_url"]).json()["status"] != "COMPLETED":
        assert time.monotonic() < deadline, "the request did not complete"
        time.sleep(0.02)
    return client.get(urls["response_url"])


def wan_image(client: httpx.Client, url: str) -> bytes:
    result = run_wan(client, {"prompt": "x", "image_urls": [url], "seed": 5})
    assert result.status_code == 200, result.text
    images = result.json()["images"]
    assert len(images) == 1
    data = fetch(images[0]["url"]).content
    assert data.startswith(PNG_SIGNATURE)
    return data


# -- CDN token ---------------------------------------------------------------------------


def test_token_has_fal_fields_and_an_aware_expiry(mock):
    server, client = mock
    body = token(client)
    assert set(body) == {"token", "token_type", "base_url", "expires_at"}
    assert body["token_type"] == "Bearer" and body["token"]
    assert body["base_url"] == f"{server.url}/_mock/cdn"
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires.utcoffset() is not None and body["expires_at"].endswith("+00:00")
    remaining = (expires - datetime.now(timezone.utc)).total_seconds()
    assert storage.CDN_TOKEN_TTL_SECONDS - 5 < remaining <= storage.CDN_TOKEN_TTL_SECONDS


def test_token_needs_a_fal_key(serve):
    _, client = serve()
    url = "/_mock/rest/storage/auth/token?storage_type=fal-cdn-v3"
    missing = httpx.post(f"{client.base_url}{url}", json={})
    # rest.fal.ai's own sentence (recorded), with the gateway's spacing
    assert missing.status_code == 401 and missing.content == b'{"detail": "Authorization header is required"}'
    assert client.post(url, json={}, headers={"Authorization": "Key nocolon"}).status_code == 401
    _, strict = serve(keys=("good:key",))
    assert strict.post(url, json={}).status_code == 401  # KEY is not among --key values
    assert strict.post(url, json={}, headers={"Authorization": "Key good:key"}).status_code == 200
    _, open_ = serve(auth=False)
    assert httpx.post(f"{open_.base_url}{url}", json={}).status_code == 200


def test_unknown_and_expired_tokens_are_refused(mock):
    server, client = mock
    upload = f"{server.url}/_mock/cdn/files/upload"
    assert httpx.post(upload, content=b"x").status_code == 401
    unknown = httpx.post(upload, content=b"x", headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401 and unknown.json() == {"detail": "Invalid token"}
    issued = token(client)
    auth = {"Authorization": f"{issued['token_type']} {issued['token']}"}
    assert httpx.post(upload, content=b"x", headers=auth).status_code == 200
    assert httpx.post(upload, content=b"x", headers={"Authorization": f"Key {KEY_VALUE}"}).status_code == 401
    server.mock.clock.advance(storage.CDN_TOKEN_TTL_SECONDS + 1)
    expired = httpx.post(upload, content=b"x", headers=auth)
    assert expired.status_code == 401 and expired.json() == {"detail": "Token expired"}
    multipart = httpx.post(f"{upload}/multipart", headers=auth)
    assert multipart.status_code == 401


def test_storage_routes_win_over_the_dashboards_catch_all(mock):
    """/_mock/rest/ and /_mock/cdn/ are storage's, whatever the dashboard (every /_mock/ path
    left over) has served before."""
    server, client = mock
    assert client.get("/_mock/").status_code == 200  # the dashboard page
    body = token(client)  # /_mock/rest/...: storage, not the dashboard's 404
    assert body["token_type"] == "Bearer"
    assert list(server.mock.uploads.tokens) == [body["token"]]
    missing = client.post("/_mock/rest/nope")  # storage's own 404, with its CORS header
    assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == "*"


# -- Python client: fal_v3 (default) -----------------------------------------------------------


def test_upload_bytes_round_trips(mock, point_client):
    server, _ = mock
    sync, _ = point_client(server)
    data = png(8, 8)
    url = sync.upload(data, "image/png")
    assert url.startswith(f"{server.url}/_mock/files/")
    got = fetch(url)
    assert got.content == data and got.headers["content-type"] == "image/png"
    # no file name sent: <32 hex>.<ext from the type>
    name = url.rsplit("/", 1)[1]
    assert len(name) == 36 and name.endswith(".png") and all(c in "0123456789abcdef" for c in name[:32])


def test_upload_file_keeps_a_sanitised_name_and_guessed_type(mock, point_client, tmp_path):
    server, _ = mock
    sync, _ = point_client(server)
    path = tmp_path / "my photo (1).png"
    path.write_bytes(png(16, 16))
    url = sync.upload_file(path)
    name = url.rsplit("/", 1)[1]
    assert name[16] == "-" and name[17:] == "my_photo_1_.png"
    got = fetch(url)
    assert got.content == path.read_bytes() and got.headers["content-type"] == "image/png"
    other = sync.upload_file(path)
    assert other != url  # every upload gets its own name


def test_upload_image_is_jpeg_by_default(mock, point_client):
    server, _ = mock
    sync, _ = point_client(server)
    image = Image.new("RGB", (40, 30), "blue")
    url = sync.upload_image(image)
    got = fetch(url)
    assert got.headers["content-type"] == "image/jpeg" and url.endswith(".jpg")
    expected = io.BytesIO()
    image.save(expected, format="jpeg")
    assert got.content == expected.getvalue()
    assert Image.open(io.BytesIO(got.content)).size == (40, 30)


def test_async_client_uploads(mock, point_client):
    server, _ = mock
    _, client = point_client(server)
    data = b"async bytes"

    async def go() -> list[str]:
        return [await client.upload(data, "text/plain", file_name="a.txt"),
                await client.upload(data, "text/plain", repository="fal", fallback_repository=[])]

    for url in asyncio.run(go()):
        got = fetch(url)
        assert got.content == data and got.headers["content-type"] == "text/plain"


# -- Python client: fallback `fal` (gcs initiate + signed PUT) -----------------------------------


def test_fal_repository_uses_initiate_and_put(mock, point_client):
    server, _ = mock
    sync, _ = point_client(server)
    data = png(8, 8, "green")
    url = sync.upload(data, "image/png", file_name="g.png", repository="fal", fallback_repository=[])
    assert url.endswith("-g.png")
    got = fetch(url)
    assert got.content == data and got.headers["content-type"] == "image/png"
    assert server.mock.uploads.tokens == {}  # the CDN token was never asked for


def test_expired_token_falls_back_to_the_fal_repository(mock, point_client, caplog):
    server, _ = mock
    sync, _ = point_client(server)
    sync.upload(b"first", "text/plain")  # caches a token
    server.mock.clock.advance(storage.CDN_TOKEN_TTL_SECONDS + 1)  # the mock now refuses it
    url = sync.upload(b"second", "text/plain", file_name="s.txt")
    assert fetch(url).content == b"second"
    assert "falling back to fal" in caplog.text


def test_initiate_answers_absolute_urls_and_the_put_needs_the_signature(mock):
    server, client = mock
    init = client.post("/_mock/rest/storage/upload/initiate?storage_type=gcs",
                       json={"file_name": "../../etc/passwd", "content_type": "text/plain"})
    assert init.status_code == 200, init.text
    body = init.json()
    assert set(body) == {"upload_url", "file_url"}
    assert body["file_url"].startswith(f"{server.url}/_mock/files/") and body["file_url"].endswith("-passwd")
    assert body["upload_url"].startswith(body["file_url"] + "?signature=")
    assert httpx.get(body["file_url"]).status_code == 404  # nothing there yet
    assert httpx.put(body["file_url"], content=b"x").status_code == 403
    assert httpx.put(body["file_url"] + "?signature=bad", content=b"x").status_code == 403
    put = httpx.put(body["upload_url"], content=b"hello")  # no Authorization, like fal-js
    assert put.status_code == 200
    got = fetch(body["file_url"])
    assert got.content == b"hello" and got.headers["content-type"] == "text/plain"
    assert client.post("/_mock/rest/storage/upload/initiate?storage_type=s3", json={}).status_code == 400
    assert httpx.post(f"{server.url}/_mock/rest/storage/upload/initiate", json={}).status_code == 401


def test_signed_urls_expire(mock):
    server, client = mock
    body = client.post("/_mock/rest/storage/upload/initiate?storage_type=fal-cdn-v3",
                       json={"file_name": "a.bin", "content_type": "application/octet-stream"}).json()
    server.mock.clock.advance(storage.UPLOAD_TTL_SECONDS + 1)
    assert httpx.put(body["upload_url"], content=b"x").status_code == 403


# -- Python client: multipart ------------------------------------------------------------------


def test_multipart_through_the_client(mock, point_client, small_multipart, tmp_path):
    server, _ = mock
    sync, _ = point_client(server)
    data = os.urandom(150 * 1024 + 7)  # 8 parts of 20 KiB, sent 10 at a time
    url = sync.upload(data, "application/x-thing")
    assert url.endswith("-upload.bin")
    got = fetch(url)
    assert got.content == data and got.headers["content-type"] == "application/x-thing"
    path = tmp_path / "clip.mp4"
    path.write_bytes(data[::-1])
    url = sync.upload_file(path)  # MultipartUpload.save_file
    assert url.endswith("-clip.mp4")
    got = fetch(url)
    assert got.content == data[::-1] and got.headers["content-type"] == "video/mp4"
    assert server.mock.uploads.multipart == {} and server.mock.uploads.pending_bytes == 0


def test_multipart_through_the_async_client(mock, point_client, small_multipart):
    server, _ = mock
    _, client = point_client(server)
    data = os.urandom(100 * 1024)
    url = asyncio.run(client.upload(data, "image/png", file_name="big.png"))
    assert fetch(url).content == data


def multipart_start(server: BackgroundServer, client: httpx.Client, name: str = "f.bin") -> tuple[str, str, dict]:
    issued = token(client)
    auth = {"Authorization": f"Bearer {issued['token']}"}
    created = httpx.post(f"{issued['base_url']}/files/upload/multipart",
                         headers={**auth, "Content-Type": "text/plain", "X-Fal-File-Name": name})
    assert created.status_code == 200, created.text
    body = created.json()
    assert set(body) == {"access_url", "uploadId"}
    return body["access_url"], body["uploadId"], auth


def test_multipart_joins_parts_in_part_number_order(mock):
    server, client = mock
    access_url, upload_id, auth = multipart_start(server, client)
    base = f"{access_url}/multipart/{upload_id}"
    etags = {}
    for n, chunk in ((3, b"ccc"), (1, b"a"), (2, b"bb")):
        put = httpx.put(f"{base}/{n}", content=chunk, headers=auth)
        assert put.status_code == 200
        etags[n] = put.headers["etag"]
        assert put.json() == {"partNumber": n, "etag": etags[n]}
        assert etags[n] == '"' + hashlib.md5(chunk).hexdigest() + '"'
    assert httpx.get(access_url).status_code == 404  # not complete yet
    parts = [{"partNumber": n, "etag": etags[n]} for n in (2, 3, 1)]
    done = httpx.post(f"{base}/complete", json={"parts": parts}, headers=auth)
    assert done.status_code == 200 and done.json() == {"access_url": access_url}
    got = fetch(access_url)
    assert got.content == b"abbccc" and got.headers["content-type"] == "text/plain"
    again = httpx.post(f"{base}/complete", json={"parts": parts})  # a retried complete
    assert again.status_code == 200


def test_multipart_refuses_bad_completions(mock):
    server, client = mock
    access_url, upload_id, _ = multipart_start(server, client)
    base = f"{access_url}/multipart/{upload_id}"
    etag = httpx.put(f"{base}/1", content=b"a").json()["etag"]  # no auth needed (fal-js sends none)
    assert httpx.post(f"{base}/complete", json={"parts": []}).status_code == 400
    assert httpx.post(f"{base}/complete", json={"parts": [{"partNumber": 2, "etag": etag}]}).status_code == 400
    assert httpx.post(f"{base}/complete", json={"parts": [{"partNumber": 1, "etag": '"x"'}]}).status_code == 400
    assert httpx.post(f"{base}/complete", content=b"{").status_code == 400
    assert httpx.put(f"{base}/0", content=b"a").status_code == 400
    assert httpx.put(f"{access_url}/multipart/nope/1", content=b"a").status_code == 404
    other = access_url.rsplit("/", 1)[0] + "/other.bin"
    assert httpx.put(f"{other}/multipart/{upload_id}/1", content=b"a").status_code == 404
    assert httpx.post(f"{base}/complete", json={"parts": [{"partNumber": 1, "etag": etag}]}).status_code == 200


def test_multipart_uploads_expire_and_are_capped(mock, monkeypatch):
    server, client = mock
    access_url, upload_id, _ = multipart_start(server, client)
    server.mock.clock.advance(storage.UPLOAD_TTL_SECONDS + 1)
    assert httpx.put(f"{access_url}/multipart/{upload_id}/1", content=b"a").status_code == 404
    monkeypatch.setattr(storage, "MAX_PENDING_MULTIPART", 2)
    started = [multipart_start(server, client) for _ in range(3)]
    assert len(server.mock.uploads.multipart) == 2
    first_url, first_id, _ = started[0]
    assert httpx.put(f"{first_url}/multipart/{first_id}/1", content=b"a").status_code == 404
    last_url, last_id, _ = started[2]
    assert httpx.put(f"{last_url}/multipart/{last_id}/1", content=b"a").status_code == 200


def test_reset_forgets_unfinished_uploads_but_keeps_tokens(mock):
    server, client = mock
    access_url, upload_id, auth = multipart_start(server, client)
    assert httpx.put(f"{access_url}/multipart/{upload_id}/1", content=b"a").status_code == 200
    assert client.post("/_mock/reset?namespace=*").status_code == 200
    assert httpx.put(f"{access_url}/multipart/{upload_id}/2", content=b"a").status_code == 404
    assert server.mock.uploads.pending_bytes == 0
    assert httpx.post(f"{server.url}/_mock/cdn/files/upload", content=b"x", headers=auth).status_code == 200


def test_multipart_bytes_are_bounded(mock, monkeypatch):
    server, client = mock
    monkeypatch.setattr(storage, "MULTIPART_MAX_BYTES", 1000)
    a_url, a_id, _ = multipart_start(server, client)
    assert httpx.put(f"{a_url}/multipart/{a_id}/1", content=b"a" * 600).status_code == 200
    b_url, b_id, _ = multipart_start(server, client)
    # together they would pass the cap: the older unfinished upload is dropped
    assert httpx.put(f"{b_url}/multipart/{b_id}/1", content=b"b" * 600).status_code == 200
    assert httpx.put(f"{a_url}/multipart/{a_id}/2", content=b"a").status_code == 404
    too_big = httpx.put(f"{b_url}/multipart/{b_id}/2", content=b"b" * 500)
    assert too_big.status_code == 413 and too_big.json()["error_type"] == "bad_request"
    assert server.mock.uploads.pending_bytes == 0


def test_single_upload_size_is_bounded(serve, monkeypatch):
    monkeypatch.setattr(storage, "SINGLE_UPLOAD_MAX_BYTES", 1024)
    server, client = serve(max_body_bytes=2048)
    auth = {"Authorization": f"Bearer {token(client)['token']}"}
    upload = f"{server.url}/_mock/cdn/files/upload"
    assert httpx.post(upload, content=b"x" * 2048, headers=auth).status_code == 200
    refused = httpx.post(upload, content=b"x" * 2049, headers=auth)
    assert refused.status_code == 413 and refused.headers["x-fal-error-type"] == "bad_request"
    init = client.post("/_mock/rest/storage/upload/initiate", json={"file_name": "a"}).json()
    assert httpx.put(init["upload_url"], content=b"x" * 2049).status_code == 413


# -- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "status"), [
    ("POST", "/_mock/rest/nope", 404),
    ("GET", "/_mock/rest/storage/auth/token", 405),
    ("POST", "/_mock/cdn/files/nope", 404),
    ("GET", "/_mock/cdn/files/upload", 405),
    ("PUT", "/_mock/files/a/b", 404),
    ("DELETE", "/_mock/files/a.png", 405),
    ("GET", "/_mock/files/a/multipart/x/1", 404),
])
def test_unknown_routes_answer_fal_shaped_errors(mock, method, path, status):
    _, client = mock
    response = client.request(method, path)
    assert response.status_code == status
    assert "detail" in response.json()
    if status == 404 and method != "GET":
        assert response.json() == {"detail": f"Path {path} not found"}


def test_preflight_is_answered(mock):
    _, client = mock
    response = client.options("/_mock/files/a.png")
    assert response.status_code == 204 and response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(("original", "expected"), [
    ("cat.png", "cat.png"),
    ("../../etc/passwd", "passwd"),
    ("a b/c d.JPG", "c_d.JPG"),
    ("Ünïcode.webp", "_n_code.webp"),
    (".hidden", "hidden"),
    ("x" * 300 + ".jpeg", "x" * 115 + ".jpeg"),  # cut to 120, extension kept
], ids=["plain", "traversal", "spaces", "unicode", "dotfile", "long"])
def test_stored_names(original, expected):
    name = storage.stored_name(original, "image/png")
    assert name[16] == "-" and name[17:] == expected
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)


@pytest.mark.parametrize(("original", "content_type", "ext"), [
    (None, "image/png", ".png"),
    ("", "image/jpeg", ".jpg"),
    ("...", "text/plain; charset=utf-8", ".txt"),
    (None, "application/octet-stream", ".bin"),
    (None, "nonsense", ".bin"),
])
def test_stored_names_without_a_name(original, content_type, ext):
    name = storage.stored_name(original, storage.clean_content_type(content_type))
    assert len(name) == 32 + len(ext) and name.endswith(ext)


# -- an uploaded file as a Wan input -------------------------------------------------------------


def test_uploaded_images_are_read_by_wan(mock, point_client):
    server, client = mock
    sync, _ = point_client(server)
    red_a = sync.upload(png(512, 512, "red"), "image/png")
    red_b = sync.upload(png(512, 512, "red"), "image/png", repository="fal", fallback_repository=[])
    blue = sync.upload(png(512, 512, "blue"), "image/png")
    # A URL that was not read would be drawn as a "not fetched: <host/path>" tile,
    # which differs per URL; the same pixels at two URLs give the same output image.
    first, second, third = (wan_image(client, url) for url in (red_a, red_b, blue))
    assert first == second
    assert first != third


def test_an_uploaded_non_image_is_an_image_load_error(mock, point_client):
    server, client = mock
    sync, _ = point_client(server)
    url = sync.upload(b"not an image at all", "image/png", file_name="fake.png")
    result = run_wan(client, {"prompt": "x", "image_urls": [url]})
    assert result.status_code == 422
    error = result.json()["detail"][0]
    assert error["type"] == "image_load_error" and error["input"] == url
    small = sync.upload(png(64, 64), "image/png")
    result = run_wan(client, {"prompt": "x", "image_urls": [small]})
    assert result.status_code == 422 and result.json()["detail"][0]["type"] == "image_too_small"


# -- JS client ----------------------------------------------------------------------------------

JS_SCRIPT = r"""
const { createFalClient } = require("@fal-ai/client");
const crypto = require("crypto");
const sha = (buf) => crypto.createHash("sha256").update(buf).digest("hex");
(async () => {
  const fal = createFalClient({ credentials: process.env.FAL_KEY, proxyUrl: { url: process.env.PROXY, when: "always" } });
  const png = Buffer.from(process.env.PNG_B64, "base64");
  const out = { png: await fal.storage.upload(new Blob([png], { type: "image/png" })), pngSha: sha(png) };
  if (process.env.MULTIPART === "1") {
    const big = Buffer.alloc(91 * 1024 * 1024);  // over the 90 MiB multipart threshold
    for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 255;
    out.big = await fal.storage.upload(new Blob([big]));
    out.bigSha = sha(big);
  }
  console.log(JSON.stringify(out));
})().catch((error) => { console.error(error); process.exit(1); });
"""


def run_js(server: BackgroundServer, data: bytes, multipart: bool) -> dict:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "@fal-ai" / "client").is_dir():
        pytest.fail("node and tests/js/node_modules (npm ci --prefix tests/js) are needed", pytrace=False)
    env = {**os.environ, "FAL_KEY": KEY_VALUE, "PROXY": f"{server.url}/api/fal/proxy",
           "PNG_B64": base64.b64encode(data).decode(), "MULTIPART": "1" if multipart else "0"}
    done = subprocess.run([node, "-e", JS_SCRIPT], cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_js_upload_through_the_proxy_feeds_wan(mock):
    server, client = mock
    data = png(512, 512, "red")
    out = run_js(server, data, multipart=False)
    url = out["png"]
    assert url.startswith(f"{server.url}/_mock/files/") and url.endswith(".png")
    got = fetch(url)
    assert got.content == data and got.headers["content-type"] == "image/png"
    assert wan_image(client, url).startswith(PNG_SIGNATURE)


def test_js_multipart_upload(mock):
    server, _ = mock
    out = run_js(server, png(8, 8), multipart=True)
    got = fetch(out["big"])
    assert hashlib.sha256(got.content).hexdigest() == out["bigSha"]
    assert got.headers["content-type"] == "application/octet-stream"
    assert server.mock.uploads.multipart == {}
