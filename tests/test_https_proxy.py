"""fal-mock as an HTTPS_PROXY for fal's hosts (issue 18.1): ``fal-mock serve --proxy``.

The clients run as real subprocesses with ONLY the environment the server printed (plus PATH
and HOME): no FAL_RUN_HOST, no code change.  They call https://queue.fal.run, https://fal.run,
https://rest.fal.ai and the CDN as in production; the mock ends those tunnels itself.
"""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from server_process import ServerProcess, serve_with_state
from test_python_client import SCENARIOS, assert_wan_output

from mock_server import FalMock
from mock_server.server.background import BackgroundServer
from mock_server.server.tls import ensure_tls
from mock_server.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
JS_DIR = REPO_ROOT / "tests" / "js"
APP = "fal-ai/wan-25-preview/image-to-image"
INPUT = {"prompt": "a lighthouse in a storm", "image_urls": ["https://example.com/a.png"], "seed": 7}
PRINTED = {"FAL_KEY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"}


@pytest.fixture(scope="module")
def proxy_server(tmp_path_factory):
    yield from serve_with_state(tmp_path_factory, "--proxy", "--profile", "default", "--speed", "10")


@pytest.fixture(scope="module")
def slow_proxy_server(tmp_path_factory):
    yield from serve_with_state(tmp_path_factory, "--proxy", "--profile", "default", "--speed", "0.001", "--workers", "1")


def printed_env(server: ServerProcess, **extra: str) -> dict[str, str]:
    """Only what the server printed, and what any shell has."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), **server.exports, **extra}


def scenario(server: ServerProcess, name: str) -> dict:
    done = subprocess.run([sys.executable, str(SCENARIOS), name], env=printed_env(server),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{name} failed:\n{done.stderr}\n{server.output()}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def curl(server: ServerProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("curl") or "curl", "-sS", *args], env=printed_env(server),
                          capture_output=True, text=True, timeout=60)


def curl_json(server: ServerProcess, *args: str) -> dict:
    done = curl(server, *args)
    assert done.returncode == 0, f"curl {args} failed: {done.stderr}\n{server.output()}"
    return json.loads(done.stdout)


def png(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (30, 120, 200)).save(out, "PNG")
    return out.getvalue()


def connect(port: int, authority: str) -> bytes:
    """What the proxy answers a bare ``CONNECT authority``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


# -- the printed lines ------------------------------------------------------------------------
def test_serve_and_env_print_the_proxy_environment(proxy_server, tmp_path):
    exports = proxy_server.exports
    assert set(exports) == PRINTED, "no FAL_RUN_HOST: the clients keep fal's own hosts"
    assert exports["HTTPS_PROXY"] == f"http://127.0.0.1:{proxy_server.port}"
    assert exports["NO_PROXY"] == "localhost,127.0.0.1,::1"
    bundle = Path(exports["SSL_CERT_FILE"])
    assert exports["CURL_CA_BUNDLE"] == str(bundle)
    assert bundle.read_bytes().endswith(Path(exports["NODE_EXTRA_CA_CERTS"]).read_bytes())
    state_dir = bundle.parent.parent
    env = subprocess.run([sys.executable, "-m", "mock_server", "env", "--proxy", "--port", str(proxy_server.port),
                          "--state-dir", str(state_dir)], capture_output=True, text=True, timeout=60)
    assert env.returncode == 0, env.stderr
    printed = [line for line in env.stdout.splitlines() if line.startswith("export ")]
    assert printed == [line for line in proxy_server.banner if line.startswith("export ")]


def test_proxy_and_tls_together_are_refused_with_a_reason():
    done = subprocess.run([sys.executable, "-m", "mock_server", "env", "--proxy", "--tls"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "--proxy" in done.stderr and "drop --tls" in done.stderr


# -- the unmodified Python client ---------------------------------------------------------------
def test_python_subscribe_through_the_proxy(proxy_server):
    seen = scenario(proxy_server, "subscribe_logs")
    assert [u["type"] for u in seen["updates"]][-1] == "Completed"
    assert_wan_output(seen["result"])
    # the answers lead back through fal's own host, over https
    assert all(image["url"].startswith("https://queue.fal.run/") for image in seen["result"]["images"])
    assert all(c["status"] == 200 and c["png"] for c in seen["images"])


def test_python_submit_status_result(proxy_server):
    seen = scenario(proxy_server, "submit_status_result")
    assert seen["first"]["type"] in ("Queued", "InProgress")
    assert_wan_output(seen["result"])
    assert seen["completed"]["type"] == "Completed" and seen["again_equal"]


def test_python_cancel(slow_proxy_server):
    seen = scenario(slow_proxy_server, "cancel_queued")
    assert seen["before"]["type"] == "Queued" and seen["after"]["type"] == "Completed"
    assert seen["error"] == {"status": 499, "message": "Request cancelled by the client."}


def test_python_run(proxy_server):
    seen = scenario(proxy_server, "run")
    assert_wan_output(seen["result"])
    assert all(image["url"].startswith("https://fal.run/") for image in seen["result"]["images"])
    assert [c["bytes"] for c in seen["images"]] == [i["file_size"] for i in seen["result"]["images"]]


def test_python_async_flows(proxy_server):
    seen = scenario(proxy_server, "async_flows")
    for key in ("subscribed", "got", "ran"):
        assert_wan_output(seen[key])


@pytest.mark.parametrize("name", ["upload_and_use", "upload_and_use_async"])
def test_python_upload_file_then_use_the_url(proxy_server, name):
    seen = scenario(proxy_server, name)
    fal_hosts = ("https://v3.fal.media/", "https://rest.fal.ai/")
    assert seen["big_url"].startswith(fal_hosts) and seen["small_url"].startswith(fal_hosts)
    assert seen["fetched_equal"], "the uploaded URL serves the uploaded bytes"
    assert_wan_output(seen["result"])
    # the mock read the uploaded file itself (offline): only its size says it is too small
    assert seen["refused"] == {"status": 422, "type": "image_too_small", "input": seen["small_url"]}


# -- curl ----------------------------------------------------------------------------------------
def test_curl_queue_fal_run(proxy_server):
    key = proxy_server.exports["FAL_KEY"]
    auth = ["-H", f"Authorization: Key {key}"]
    submitted = curl_json(proxy_server, f"https://queue.fal.run/{APP}", *auth,
                          "-H", "Content-Type: application/json", "-d", json.dumps(INPUT))
    assert submitted["status"] == "IN_QUEUE"
    assert submitted["status_url"].startswith("https://queue.fal.run/fal-ai/wan-25-preview/requests/")
    status = curl_json(proxy_server, submitted["status_url"], *auth)
    assert status["status"] in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")


def test_curl_v3_fal_media(proxy_server):
    key = proxy_server.exports["FAL_KEY"]
    token = curl_json(proxy_server, "-X", "POST", "https://rest.fal.ai/storage/auth/token?storage_type=fal-cdn-v3",
                      "-H", f"Authorization: Key {key}", "-H", "Content-Type: application/json", "-d", "{}")
    data = png(64)
    done = subprocess.run([shutil.which("curl") or "curl", "-sS", "-X", "POST", "https://v3.fal.media/files/upload",
                           "-H", f"Authorization: Bearer {token['token']}", "-H", "Content-Type: image/png",
                           "--data-binary", "@-"], input=data, env=printed_env(proxy_server),
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    uploaded = json.loads(done.stdout)
    assert uploaded["access_url"].startswith("https://v3.fal.media/")
    fetched = subprocess.run([shutil.which("curl") or "curl", "-sS", uploaded["access_url"]],
                             env=printed_env(proxy_server), capture_output=True, timeout=60)
    assert fetched.returncode == 0 and fetched.stdout == data


# -- other hosts ---------------------------------------------------------------------------------
def test_another_host_is_refused_with_a_403_naming_it(proxy_server):
    done = curl(proxy_server, "https://example.com/")
    assert done.returncode == 56 and "403" in done.stderr  # CONNECT tunnel failed, response 403
    answer = connect(proxy_server.port, "example.com:443")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 ")
    refusal = json.loads(body)
    assert "example.com:443" in refusal["detail"] and refusal["error_type"] == "host_not_proxied"
    # fal's host on another port is no fal endpoint either; the plain port still serves
    assert connect(proxy_server.port, "queue.fal.run:8443").startswith(b"HTTP/1.1 403 ")
    assert httpx.get(proxy_server.url + "/_mock/health").status_code == 200


def test_a_malformed_connect_is_a_400(proxy_server):
    assert connect(proxy_server.port, "queue.fal.run").startswith(b"HTTP/1.1 400 ")


# -- the lane on and off, uvicorn's own protocols --------------------------------------------------
@pytest.mark.parametrize("lane,http", [(True, None), (False, None), (True, "h11"), (True, "httptools")])
def test_the_proxy_serves_whatever_protocol_serves_the_port(tmp_path, lane, http):
    files = ensure_tls(tmp_path)
    options = {"http": http} if http else {}
    server = BackgroundServer(FalMock(Settings(profile="instant")), lane=lane, proxy_files=files, **options).start()
    try:
        verify = ssl.create_default_context(cafile=str(files.bundle))
        with httpx.Client(proxy=server.url, verify=verify) as client:
            auth = {"Authorization": "Key fal-mock:secret"}
            submitted = client.post(f"https://queue.fal.run/{APP}", json=INPUT, headers=auth)
            assert submitted.status_code == 200, submitted.text
            status = client.get(submitted.json()["status_url"], headers=auth)
            assert status.status_code in (200, 202) and status.json()["request_id"] == submitted.json()["request_id"]
            ran = client.post(f"https://fal.run/{APP}", json=INPUT, headers=auth)
            assert ran.status_code == 200 and ran.json()["images"][0]["url"].startswith("https://fal.run/_mock/files/")
            schema = client.get("https://fal.ai/api/openapi/queue/openapi.json", params={"endpoint_id": APP})
            assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.")
        assert httpx.get(server.url + "/_mock/health").status_code == 200  # not a CONNECT: served as before
    finally:
        server.stop()


# -- Node: undici's EnvHttpProxyAgent as the global dispatcher -------------------------------------
@pytest.fixture(scope="module")
def js_with_undici() -> Path:
    if not (JS_DIR / "node_modules" / "undici" / "package.json").is_file():
        npm = shutil.which("npm")
        assert npm, "the Node proxy test needs npm"
        done = subprocess.run([npm, "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund"],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    return JS_DIR


def test_node_client_through_env_http_proxy_agent(proxy_server, js_with_undici):
    node = shutil.which("node")
    assert node, "the Node proxy test needs node >= 20"
    env = printed_env(proxy_server, FAL_MOCK_PNG_BASE64=base64.b64encode(png(400)).decode())
    done = subprocess.run([node, str(js_with_undici / "proxy_client.mjs")], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{proxy_server.output()}"
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["uploaded"].startswith(("https://v3.fal.media/", "https://rest.fal.ai/"))
    assert seen["images"] == 1 and seen["imageStatus"] == 200 and seen["imagePng"]


# -- --allow-fetch: other hosts tunnelled through ---------------------------------------------------
class _Echo:
    """A TCP server on loopback that echoes what it reads, upper-cased (the "real" host)."""

    def __init__(self) -> None:
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data.upper())


def test_allow_fetch_tunnels_other_hosts_but_never_to_metadata_addresses(tmp_path, monkeypatch):
    from mock_server.endpoints.fal_app import netguard

    echo = _Echo()
    real_resolve = netguard.resolve_pinned

    async def resolve(url: str, timeout: float):
        if url.startswith("https://example.com:"):  # stands for the real host (no network here)
            return netguard.PinnedTarget(url=url, host_header="example.com", sni_hostname="example.com",
                                         address="127.0.0.1")
        return await real_resolve(url, timeout)

    monkeypatch.setattr(netguard, "resolve_pinned", resolve)
    files = ensure_tls(tmp_path)
    server = BackgroundServer(FalMock(Settings(profile="instant", allow_fetch=True)), proxy_files=files).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(f"CONNECT example.com:{echo.port} HTTP/1.1\r\nHost: example.com\r\n\r\n".encode())
            assert sock.recv(4096) == b"HTTP/1.1 200 Connection Established\r\n\r\n"
            sock.sendall(b"hello through the tunnel")
            received = b""
            while len(received) < len(b"hello through the tunnel"):
                received += sock.recv(4096)
            assert received == b"HELLO THROUGH THE TUNNEL"
        # the cloud metadata address: refused, as the fetches are (netguard)
        refused = connect(server.port, "169.254.169.254:80")
        assert refused.startswith(b"HTTP/1.1 403 ") and b"169.254.169.254" in refused
    finally:
        server.stop()


def test_a_client_that_does_not_trust_the_ca_is_refused_quietly(proxy_server):
    """Without SSL_CERT_FILE the handshake fails on the client's side; the server logs no traceback."""
    with httpx.Client(proxy=proxy_server.exports["HTTPS_PROXY"]) as client:  # certifi's roots only
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(f"https://queue.fal.run/{APP}/requests/x/status")
    assert httpx.get(proxy_server.url + "/_mock/health").status_code == 200
    assert "Traceback" not in proxy_server.output()
