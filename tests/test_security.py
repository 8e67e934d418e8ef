"""Security defaults: loopback by default, and ``--allow-fetch`` never reaches link-local or
cloud-metadata addresses, not even through a redirect or a DNS answer that changes.

The fetch tests run ``read_inputs`` on a plain asyncio loop whose ``create_connection`` is
wrapped: any attempt to dial a non-loopback address is recorded and refused, so a broken
guard fails the test without a packet ever leaving the machine.
"""
from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from mock_server.endpoints.fal_app import netguard
from mock_server.core.answers import Answer
from mock_server.core.endpoint import EndpointEnv
from mock_server.core.files import FileStore
from mock_server.endpoints.fal_app.inputs import read_inputs
from mock_server.settings import Settings


def test_listens_on_loopback_by_default():
    import argparse

    from mock_server import cli

    assert Settings().host == "127.0.0.1"
    parser = argparse.ArgumentParser()
    cli._add_server_flags(parser)
    assert cli.settings_from(parser.parse_args([])).host == "127.0.0.1"
    assert Settings().allow_fetch is False and Settings().auth is True


# -- the fetch guard ---------------------------------------------------------------------------

def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 400), (5, 5, 5)).save(out, "PNG")
    return out.getvalue()


SEEN_HOSTS: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        SEEN_HOSTS.append(self.headers.get("host", ""))
        routes = {
            "/ok.png": (200, {"content-type": "image/png"}, _png()),
            "/to-metadata": (302, {"location": "http://169.254.169.254/latest/meta-data/"}, b""),
            "/to-metadata-v6": (302, {"location": "http://[fd00:ec2::254]/latest/meta-data/"}, b""),
            "/to-gce": (302, {"location": "http://metadata.google.internal/computeMetadata/v1/"}, b""),
            "/to-link-local": (301, {"location": "http://169.254.10.20:8080/x.png"}, b""),
            "/to-mapped": (307, {"location": "http://[::ffff:169.254.169.254]/"}, b""),
            "/to-ok": (302, {"location": "/ok.png"}, b""),
        }
        status, headers, body = routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def origin():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dialled(monkeypatch):
    """Every address the HTTP client dials; non-loopback ones are refused (never reached)."""
    attempts: list[str] = []
    original = asyncio.base_events.BaseEventLoop.create_connection

    async def guarded(self, protocol_factory, host=None, port=None, *args, **kwargs):
        attempts.append(str(host))
        try:
            loopback = netguard.ipaddress.ip_address(str(host)).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise OSError(f"test safety net: refused to dial {host}")
        return await original(self, protocol_factory, host, port, *args, **kwargs)

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "create_connection", guarded)
    return attempts


@pytest.fixture
def env() -> EndpointEnv:
    return EndpointEnv(files=FileStore(), file_url=lambda n: n, own_file_name=lambda u: None,
                       allow_fetch=True, fetch_timeout=5.0, fetch_max_bytes=10**7)


def read(urls, env):
    return asyncio.run(read_inputs(urls, env))


def download_error(url: str) -> dict:
    return {"detail": [{"loc": ["body", "image_urls", 0], "msg": "Failed to download the file. Please check if the URL is accessible and try again.",
                        "type": "file_download_error",
                        "url": "https://docs.fal.ai/errors#file_download_error", "input": url}]}


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.170.2/v2/credentials",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fe80::1]/x.png",
    "http://[::ffff:169.254.169.254]/",
    "http://[2002:a9fe:a9fe::1]/",           # 6to4 wrapping 169.254.169.254
    "http://2852039166/",                    # 169.254.169.254 as one decimal number
    "http://0xa9.0xfe.0xa9.0xfe/",           # and in hex
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.GOOGLE.INTERNAL./computeMetadata/v1/",
    "https://metadata.goog/",
    "http://100.100.100.200/latest/meta-data/",
    "http://0.0.0.0:80/",
])
def test_link_local_and_metadata_addresses_are_never_dialled(env, dialled, url):
    result = read([url], env)
    assert isinstance(result, Answer) and result.status == 422
    assert json.loads(result.body) == download_error(url)
    assert dialled == []


@pytest.mark.parametrize("path", ["/to-metadata", "/to-metadata-v6", "/to-gce", "/to-link-local", "/to-mapped"])
def test_redirects_to_metadata_are_refused(env, dialled, origin, path):
    url = f"http://127.0.0.1:{origin}{path}"
    result = read([url], env)
    assert json.loads(result.body) == download_error(url)
    assert dialled == ["127.0.0.1"], "only the loopback origin was dialled"


def test_loopback_stays_allowed_and_redirects_are_followed(env, dialled, origin):
    result = read([f"http://127.0.0.1:{origin}/to-ok", f"http://localhost:{origin}/ok.png"], env)
    assert isinstance(result, list) and len(result) == 2 and all(p.thumbnail is not None for p in result)
    assert set(dialled) <= {"127.0.0.1", "::1"}


def test_the_connection_is_pinned_to_the_checked_address(env, dialled, origin, monkeypatch):
    """DNS rebinding: the first answer is loopback (allowed), any later one the metadata
    address.  The fetch resolves once per hop and dials the address it checked."""
    answers: list[str] = []

    def rebinding(host, port, *args, **kwargs):
        address = "127.0.0.1" if not answers else "169.254.169.254"
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(netguard, "getaddrinfo", rebinding)
    SEEN_HOSTS.clear()
    result = read([f"http://rebind.test:{origin}/ok.png"], env)
    assert isinstance(result, list) and result[0].thumbnail is not None
    assert answers == ["127.0.0.1"] and dialled == ["127.0.0.1"]
    assert SEEN_HOSTS == [f"rebind.test:{origin}"], "the origin still sees the name in Host"
    # a second fetch gets the rebound answer and is refused before dialling
    url = f"http://rebind.test:{origin}/ok.png"
    assert json.loads(read([url], env).body) == download_error(url)
    assert dialled == ["127.0.0.1"]


def test_a_name_with_any_refused_address_is_refused(env, dialled, monkeypatch):
    monkeypatch.setattr(netguard, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::1%1", port, 0, 1)),
    ])
    url = "http://mixed.test/x.png"
    assert json.loads(read([url], env).body) == download_error(url)
    assert dialled == []


@pytest.mark.parametrize("address,reason", [
    ("169.254.169.254", "a cloud metadata address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("169.254.1.1", "a link-local address"),
    ("fe80::abcd%eth0", "a link-local address"),
    ("::ffff:169.254.0.1", "a link-local address"),
    # IPv4 inside IPv6 (issue 21.10): a translator or tunnel on the path delivers to the IPv4 address
    ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),  # NAT64 well-known prefix, /96
    ("64:ff9b::169.254.1.1", "a link-local address"),
    ("64:ff9b::0.0.0.0", "an unspecified address"),
    ("64:ff9b::e000:1", "a multicast address"),
    ("64:ff9b:1::a9fe:102", "a link-local address"),  # NAT64 local-use /48 prefix, /96 layout
    ("64:ff9b:1:a9fe:a9:fe00::", "a cloud metadata address"),  # the same prefix, /48 layout
    ("64:ff9b:1:6464:64:c800::", "a cloud metadata address"),  # 100.100.100.200, /48 layout
    ("2001:0:102:304::5601:5601", "a cloud metadata address"),  # Teredo client 169.254.169.254 (inverted)
    ("2001:0:a9fe:a9fe::f7f7:f7f7", "a cloud metadata address"),  # Teredo server 169.254.169.254
    ("2002:a9fe:a9fe::1", "a cloud metadata address"),  # 6to4
    ("::169.254.169.254", "a cloud metadata address"),  # IPv4-compatible
    ("::ffff:169.254.169.254", "a cloud metadata address"),  # IPv4-mapped
    ("64:ff9b::808:808", None),  # NAT64 of a public address stays allowed
    ("2001:0:102:304::f7f7:f7f7", None),  # Teredo between public addresses
    ("64:ff9b:1::808:808", None),
    ("0.0.0.0", "an unspecified address"),
    ("224.0.0.1", "a multicast address"),
    ("127.0.0.1", None),
    ("::1", None),
    ("10.1.2.3", None),
    ("93.184.216.34", None),
])
def test_blocked_reason(address, reason):
    assert netguard.blocked_reason(address) == reason


def test_fetching_is_off_by_default_and_nothing_is_dialled(dialled):
    env = EndpointEnv(files=FileStore(), file_url=lambda n: n, own_file_name=lambda u: None)
    (preview,) = read(["http://169.254.169.254/latest/meta-data/"], env)
    assert preview.thumbnail is None and dialled == []


def test_an_admin_token_guards_the_control_api_but_not_health_or_files():
    import httpx

    from mock_server.server.background import BackgroundServer
    from mock_server.emulator import FalMock
    from mock_server.settings import Settings

    with BackgroundServer(FalMock(Settings(profile="instant", admin_token="s3cret"))) as server:
        assert httpx.get(f"{server.url}/_mock/health").status_code == 200
        denied = httpx.post(f"{server.url}/_mock/reset")
        assert (denied.status_code, denied.json()) == (401, {"detail": "Admin token required"})
        assert httpx.get(f"{server.url}/_mock/requests", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.post(f"{server.url}/_mock/reset?namespace=*", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(f"{server.url}/_mock/requests", headers={"X-Fal-Mock-Admin-Token": "s3cret"}).status_code == 200
        assert httpx.get(f"{server.url}/_mock/files/nothing.png").status_code == 404  # open, just not there


def test_off_loopback_a_token_is_generated_and_printed_when_none_is_given():
    from mock_server.cli import banner_lines
    import argparse

    from mock_server import cli

    parser = argparse.ArgumentParser()
    cli._add_server_flags(parser)
    settings = cli.settings_from(parser.parse_args(["--host", "0.0.0.0"]))
    assert settings.admin_token and len(settings.admin_token) >= 24
    assert f"# admin token (for /_mock/): {settings.admin_token}" in banner_lines(settings)
    local = cli.settings_from(parser.parse_args([]))
    assert local.admin_token is None
    given = cli.settings_from(parser.parse_args(["--host", "0.0.0.0", "--admin-token", "t0k"]))
    assert given.admin_token == "t0k"


@pytest.mark.parametrize("flags,env_token", [
    (["--host", "0.0.0.0", "--admin-token", ""], None),
    (["--host", "0.0.0.0", "--admin-token", "  "], None),
    (["--host", "0.0.0.0"], ""),
])
def test_an_empty_admin_token_is_no_token(monkeypatch, flags, env_token):
    """Issue 21.5: ``FAL_MOCK_ADMIN_TOKEN=`` or ``--admin-token ''`` off loopback must not open
    the control API to the network: a token is generated and printed as for a missing one."""
    import argparse

    from mock_server import cli

    if env_token is not None:
        monkeypatch.setenv("FAL_MOCK_ADMIN_TOKEN", env_token)
    parser = argparse.ArgumentParser()
    cli._add_server_flags(parser)  # reads the variable now, as the CLI does
    settings = cli.settings_from(parser.parse_args(flags))
    assert settings.admin_token and len(settings.admin_token) >= 24
    assert f"# admin token (for /_mock/): {settings.admin_token}" in cli.banner_lines(settings)
    # on loopback an empty token stays "no token" (open to the local user, as without one)
    local = cli.settings_from(parser.parse_args([a for a in flags if a != "0.0.0.0" and a != "--host"]))
    assert local.admin_token is None
