"""Issue 21: no web page, rebinding name or neighbour takes the mock over.

- stored files never run as the mock's origin (nosniff, CSP sandbox, attachment);
- the JS proxy refuses browser calls from foreign origins (unless ``--proxy-cors``);
- the Host guard (DNS rebinding) on every route, the fast lane included;
- keys are redacted, and changing auth/keys needs the admin token or a local caller;
- the JWKS is open;
- and the whole drive-by chain in headless Chromium, from a page on another origin.
"""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mock_server.emulator import FalMock
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings

APP = "fal-ai/wan-25-preview/image-to-image"
HTML = (b"<!doctype html><script>var x = new XMLHttpRequest(); x.open('POST', '/_mock/config', false);"
        b"x.setRequestHeader('content-type', 'application/json');"
        b"x.send('{\"auth\": false, \"allow_fetch\": true}'); document.title = 'took over ' + x.status;</script>")


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(FalMock(Settings(profile="instant"))) as background:
        yield background


@pytest.fixture
def mock(server):
    server.call(server.mock.reset)
    yield server
    server.call(server.mock.reset)
    server.call(lambda: server.mock.configure(auth=True, allow_fetch=False))


def upload(url: str, content_type: str, data: bytes, headers: dict[str, str] | None = None) -> str:
    started = httpx.post(f"{url}/_mock/rest/storage/upload/initiate?storage_type=gcs",
                         json={"file_name": "page.html", "content_type": content_type},
                         headers={"Authorization": "Key a:b", **(headers or {})})
    assert started.status_code == 200, started.text
    put = httpx.put(started.json()["upload_url"], content=data, headers={"content-type": content_type})
    assert put.status_code == 200, put.text
    return started.json()["file_url"]


# -- stored files -------------------------------------------------------------------------------
@pytest.mark.parametrize(("content_type", "attachment"), [
    ("text/html", True), ("image/svg+xml", True), ("application/xhtml+xml", True), ("text/plain", True),
    ("application/octet-stream", True), ("image/png", False), ("image/jpeg", False), ("image/webp", False),
    ("image/gif", False),
])
def test_stored_files_never_run_as_the_mocks_origin(mock, content_type, attachment):
    file_url = upload(mock.url, content_type, HTML)
    for method in ("GET", "HEAD"):
        served = httpx.request(method, file_url)
        assert served.status_code == 200
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert (served.headers.get("content-disposition") == "attachment") is attachment, served.headers


def test_rendered_outputs_stay_inline_images(mock):
    submitted = httpx.post(f"{mock.url}/{APP}", headers={"Authorization": "Key a:b"},
                           json={"prompt": "a lighthouse", "image_urls": ["https://example.com/a.png"]})
    image_url = submitted.json()["images"][0]["url"]
    served = httpx.get(image_url)
    assert served.headers["content-type"].startswith("image/")
    assert "content-disposition" not in served.headers and served.headers["x-content-type-options"] == "nosniff"


# -- the JS proxy and browser origins --------------------------------------------------------------
TARGET = "https://rest.fal.ai/storage/upload/initiate?storage_type=gcs"


def proxy(url: str, method: str = "POST", **headers: str) -> httpx.Response:
    return httpx.request(method, f"{url}/api/fal/proxy", json={"file_name": "a.html", "content_type": "text/html"},
                         headers={"x-fal-target-url": TARGET, **headers})


def test_the_proxy_refuses_browser_calls_from_other_sites(mock):
    for method in ("OPTIONS", "POST"):
        refused = proxy(mock.url, method, origin="http://evil.example")
        assert refused.status_code == 403 and "http://evil.example" in refused.json()["detail"], refused.text
        assert "access-control-allow-origin" not in refused.headers
    refused = proxy(mock.url, origin="null")  # a sandboxed frame
    assert refused.status_code == 403
    assert not any(entry.kind == "upload" for entry in mock.mock.journal.entries()), "nothing reached storage"


def test_the_proxy_serves_tools_its_own_origin_and_loopback_pages(mock):
    assert proxy(mock.url).status_code == 200  # Node, Python, curl: no Origin
    own = mock.url  # http://127.0.0.1:port
    for origin in (own, "http://localhost:3000", "http://127.0.0.1:5173"):
        preflight = proxy(mock.url, "OPTIONS", origin=origin)
        assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == origin
        assert proxy(mock.url, origin=origin).status_code == 200


def test_proxy_cors_allows_the_origins_the_user_names():
    settings = Settings(profile="instant", proxy_cors=("https://app.example",))
    with BackgroundServer(FalMock(settings)) as server:
        allowed = proxy(server.url, "OPTIONS", origin="https://app.example")
        assert allowed.status_code == 204 and allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert proxy(server.url, origin="https://other.example").status_code == 403
    with BackgroundServer(FalMock(Settings(profile="instant", proxy_cors=("*",)))) as server:
        assert proxy(server.url, origin="https://other.example").status_code == 200


def test_cli_proxy_cors_flag():
    import argparse

    from mock_server import cli

    parser = argparse.ArgumentParser()
    cli._add_server_flags(parser)
    assert cli.settings_from(parser.parse_args([])).proxy_cors == ()
    flags = parser.parse_args(["--proxy-cors", "https://a.example/, http://localhost:3000"])
    assert cli.settings_from(flags).proxy_cors == ("https://a.example", "http://localhost:3000")


# -- DNS rebinding -------------------------------------------------------------------------------
def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("request_line", [
    b"POST /_mock/reset HTTP/1.1", b"GET /_mock/requests HTTP/1.1", b"GET /_mock/ HTTP/1.1",
    f"POST /queue/{APP} HTTP/1.1".encode(),  # the fast lane's call
    f"POST /{APP} HTTP/1.1".encode(), b"POST /api/fal/proxy HTTP/1.1",
])
def test_a_rebinding_host_is_refused_on_every_route(mock, request_line):
    before = len(mock.mock.journal.entries())
    body = b'{"prompt": "x", "image_urls": ["https://example.com/a.png"]}'
    data = raw(mock.port, request_line + b"\r\nHost: rebind.evil.example:%d\r\nOrigin: http://rebind.evil.example:%d\r\n"
               b"Authorization: Key a:b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
               b"Connection: close\r\n\r\n%s" % (mock.port, mock.port, len(body), body))
    head, _, answer = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403"), data[:300]
    assert b"rebind.evil.example" in answer and b"--allowed-hosts" in answer
    assert len(mock.mock.journal.entries()) == before and len(mock.mock.queue) == 0


def test_loopback_names_and_fals_hosts_are_answered(mock):
    for host in (b"localhost:%d" % mock.port, b"127.0.0.1", b"[::1]:1", b"queue.localhost", b"queue.fal.run"):
        data = raw(mock.port, b"GET /_mock/health HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200"), (host, data[:200])


def test_allowed_hosts_are_answered():
    with BackgroundServer(FalMock(Settings(profile="instant", allowed_hosts=("mybox.lan",)))) as server:
        data = raw(server.port, b"GET /_mock/health HTTP/1.1\r\nHost: mybox.lan:1\r\nConnection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200")


# -- keys, auth and the JWKS -----------------------------------------------------------------------------
def test_keys_are_redacted_in_every_answer():
    settings = Settings(profile="instant", keys=("team:s3cret-value", "bare"))
    with BackgroundServer(FalMock(settings)) as server:
        for answer in (httpx.get(f"{server.url}/_mock/config"),
                       httpx.post(f"{server.url}/_mock/config", json={"speed": 2.0})):
            assert answer.json()["keys"] == ["team:***", "***"]
            assert "s3cret-value" not in answer.text
        changed = httpx.post(f"{server.url}/_mock/config", json={"keys": ["new:other-secret"]})
        assert changed.json()["keys"] == ["new:***"] and server.mock.settings.keys == ("new:other-secret",)


def _own_address() -> str | None:
    """An address of this machine that is not loopback (the test dials itself through it)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_changing_auth_needs_the_admin_token_or_a_local_caller():
    address = _own_address()
    assert address, "the test needs a non-loopback address on this machine"
    with BackgroundServer(FalMock(Settings(profile="instant", host="0.0.0.0")), host="0.0.0.0") as server:
        remote = f"http://{address}:{server.port}"
        local = f"http://127.0.0.1:{server.port}"
        for change in ({"auth": False}, {"keys": ["mine:x"]}):
            refused = httpx.post(f"{remote}/_mock/config", json=change)
            assert refused.status_code == 403 and "admin token" in refused.json()["detail"]
        assert server.mock.settings.auth is True and server.mock.settings.keys == ()
        assert httpx.post(f"{remote}/_mock/config", json={"speed": 2.0}).status_code == 200  # the rest stays open
        assert httpx.post(f"{local}/_mock/config", json={"auth": False}).json()["auth"] is False  # loopback
    token = {"Authorization": "Bearer t0k"}
    with BackgroundServer(FalMock(Settings(profile="instant", host="0.0.0.0", admin_token="t0k")), host="0.0.0.0") as server:
        remote = f"http://{address}:{server.port}"
        assert httpx.post(f"{remote}/_mock/config", json={"auth": False}).status_code == 401
        assert httpx.post(f"{remote}/_mock/config", json={"auth": False}, headers=token).json()["auth"] is False


def test_the_jwks_is_open_even_with_an_admin_token():
    with BackgroundServer(FalMock(Settings(profile="instant", admin_token="t0k"))) as server:
        for path in ("/_mock/.well-known/jwks.json", "/_mock/rest/.well-known/jwks.json"):
            jwks = httpx.get(server.url + path)
            assert jwks.status_code == 200 and jwks.json()["keys"][0]["kty"] == "OKP"
        assert httpx.get(f"{server.url}/_mock/webhooks").status_code == 401  # the rest stays guarded


# -- the drive-by chain in a browser -------------------------------------------------------------
ATTACK_PAGE = """<!doctype html><title>evil</title><script>
async function upload(initiate, headers, contentType, body) {
  const started = await fetch(initiate, {method: 'POST', headers: {'content-type': 'application/json', ...headers},
                                         body: JSON.stringify({file_name: 'page.html', content_type: contentType})});
  const {upload_url, file_url} = await started.json();
  await fetch(upload_url, {method: 'PUT', headers: {'content-type': contentType}, body});
  return file_url;
}
async function attack(mock, html) {
  const found = {};
  try {  // through the keyless JS proxy, as the red team did
    found.proxy = await upload(mock + '/api/fal/proxy',
      {'x-fal-target-url': 'https://rest.fal.ai/storage/upload/initiate?storage_type=gcs'}, 'text/html', html);
  } catch (error) { found.proxy = 'refused: ' + error; }
  // straight to the storage stand-in (CORS *, any well-formed key)
  const direct = mock + '/_mock/rest/storage/upload/initiate?storage_type=gcs';
  for (const type of ['text/html', 'image/svg+xml', 'image/png']) {
    found[type] = await upload(direct, {authorization: 'Key a:b'}, type, html);
  }
  return found;
}
</script>"""


@pytest.fixture(scope="module")
def evil_site():
    """Another origin: a second local HTTP server, reached as http://evil.example:PORT."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = ATTACK_PAGE.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    yield f"http://evil.example:{site.server_address[1]}/"
    site.shutdown()
    site.server_close()


def test_a_page_on_another_site_cannot_take_the_mock_over(mock, evil_site):
    from test_dashboard import CHROMIUM_ARGS, chromium_path
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            args=CHROMIUM_ARGS + ["--host-resolver-rules=MAP evil.example 127.0.0.1"])
        try:
            page = browser.new_context(accept_downloads=True).new_page()
            page.set_default_timeout(10_000)
            page.goto(evil_site)
            found = page.evaluate("([mock, html]) => attack(mock, html)", [mock.url, HTML.decode()])
            assert found["proxy"].startswith("refused"), found  # the proxy refused the foreign page
            for content_type in ("text/html", "image/svg+xml"):
                # the page navigates to its upload: a download, never a page of the mock's origin
                with page.expect_download() as download:
                    page.evaluate("url => { location.href = url }", found[content_type])
                assert download.value.url == found[content_type]
                assert page.url == evil_site
            # a raster type is shown inline: as an image, its script never runs
            with page.expect_navigation():
                page.evaluate("url => { location.href = url }", found["image/png"])
            assert page.url == found["image/png"] and not page.title().startswith("took over")
        finally:
            browser.close()
    config = httpx.get(f"{mock.url}/_mock/config").json()
    assert (config["auth"], config["allow_fetch"]) == (True, False), "the control API was changed"
    assert not any(e.path == "/_mock/config" for e in mock.mock.journal.entries()), "the page reached /_mock/config"
