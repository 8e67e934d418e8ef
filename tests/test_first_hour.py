"""A newcomer's first hour with the command line (issue 18, section 2): flags refused in one
line, a busy port said before any banner, the banner once the port listens, ``env`` into a
closed pipe, the plain server's banner."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

from mock_server import cli
from server_process import REPO_ROOT, free_port


def run_cli(*args: str, **options) -> subprocess.CompletedProcess:
    options.setdefault("capture_output", True)
    options.setdefault("timeout", 60)
    return subprocess.run([sys.executable, "-m", "mock_server", *args], text=True, cwd=REPO_ROOT,
                          **options)


@pytest.mark.parametrize("flags, reason", [
    (["--port", "99999"], "--port must be between 1 and 65535"),
    (["--port", "0"], "--port must be between 1 and 65535"),
    (["--keys", "nocolon"], "'nocolon' is not of the form id:secret"),
    (["--keys", "a:b,c:"], "'c:' is not of the form id:secret"),
    (["--keys", ","], "--keys needs at least one key"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--speed", "nan"], "--speed must be greater than 0"),
    (["--max-pending", "0"], "--max-pending must be at least 1"),
    (["--polls", "0"], "--polls must be at least 1"),
    (["--profile", "slow"], "invalid choice: 'slow'"),
])
def test_a_bad_flag_value_exits_2_with_one_line(flags, reason, capsys):
    # `env` in this process (`serve` and `env` share the flags and their check; a `serve` that
    # wrongly accepted a value would serve here forever: it is run as a process below)
    with pytest.raises(SystemExit) as exited:
        cli.main(["env", *flags])
    out, err = capsys.readouterr()
    assert exited.value.code == 2
    assert out == "" and err.count("\n") == 1 and reason in err, err
    assert err.startswith("fal-mock env: error: ")


@pytest.mark.parametrize("flags, reason", [
    (["--port", "99999"], "--port must be between 1 and 65535, not 99999"),
    (["--keys", "nocolon"], "--keys: 'nocolon' is not of the form id:secret"),
])
def test_serve_refuses_a_bad_flag_value_with_status_2(flags, reason):
    done = run_cli("serve", *flags, timeout=30)
    assert (done.returncode, done.stdout) == (2, "")
    assert len(done.stderr.splitlines()) == 1 and reason in done.stderr, done.stderr


def test_a_busy_port_is_said_in_one_line_before_any_banner():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run_cli("serve", "--port", str(port))
    assert done.returncode == 3
    assert done.stdout == "", "no banner for a server that could not start"
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {port} on 127.0.0.1 is taken" in lines[0] and "--port" in lines[0]


def test_the_banner_is_printed_once_the_port_listens():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "mock_server", "serve", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    try:
        first = process.stdout.readline()
        assert first.startswith("export FAL_KEY="), first + process.stderr.read()
        # no retry: the port listens when the first line arrives
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_env_into_a_pipe_whose_reader_has_gone_exits_quietly():
    # `fal-mock env | head -1`: a real pipe whose read end is closed before env writes
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = run_cli("env", stdout=write_end, stderr=subprocess.PIPE, capture_output=False)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.stderr == ""


def test_the_plain_banner_says_which_clients_its_lines_serve():
    plain = run_cli("env").stdout.splitlines()
    note = [line for line in plain if line.startswith("# plain HTTP")]
    assert len(note) == 1 and "fal_client (Python)" in note[0] and "--tls" in note[0] and "--proxy" in note[0]
    assert not any(line.startswith("# plain HTTP") for line in cli.banner_lines(cli.Settings(tls=True), SimpleNamespace(bundle="b.pem", ca_cert="ca.pem")))


def _tls_handshake(port: int) -> None:
    """What an https:// client pointed at the plain port sends: a ClientHello."""
    import ssl

    context = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, OSError)):
            context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_a_tls_handshake_on_the_plain_port_is_logged_in_one_clear_line():
    from server_process import ServerProcess

    with ServerProcess(["--profile", "instant"]) as server:
        _tls_handshake(server.port)
        import httpx

        assert httpx.get(f"{server.url}/_mock/health").status_code == 200  # still serving
    said = [line for line in server.stderr_lines if "TLS handshake" in line]
    assert len(said) == 1, server.output()
    assert "reached this plain-HTTP port from 127.0.0.1:" in said[0] and "--tls" in said[0]
    assert not any("Invalid HTTP request" in line for line in server.stderr_lines), server.output()


@pytest.mark.parametrize("options", [{"lane": False}, {"http": "httptools"}, {"http": "h11"}],
                         ids=["lane-off", "uvicorn-httptools", "uvicorn-h11"])
def test_the_tls_line_is_logged_with_the_lane_off_and_on_uvicorns_own_protocols(options):
    import logging

    from mock_server.emulator import FalMock
    from mock_server.server.background import BackgroundServer
    from mock_server.settings import Settings

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    logger = logging.getLogger("uvicorn.error")
    handler = Keep()
    # log_level: the served CLI's (a background server logs errors only)
    with BackgroundServer(FalMock(Settings(profile="instant")), log_level="warning", **options) as server:
        logger.addHandler(handler)  # once uvicorn has configured its loggers (which drops handlers)
        try:
            _tls_handshake(server.port)
            import httpx

            assert httpx.get(f"{server.url}/_mock/health").status_code == 200
        finally:
            logger.removeHandler(handler)
    assert [m for m in seen if "TLS handshake" in m and "--tls" in m], seen
    assert not [m for m in seen if "Invalid HTTP request" in m], seen


WAN = "fal-ai/wan-25-preview/image-to-image"
WAN_INPUT = {"prompt": "a cat", "image_urls": ["https://example.com/a.png"]}


def _calls_logged(server, count: int) -> list[str]:
    """The lines printed after the banner, once ``count`` are there (at most 10 s)."""
    import time

    deadline = time.monotonic() + 10
    while True:
        with server._lock:
            lines = server.stdout_lines[len(server.banner):]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)


def test_log_requests_writes_one_line_per_call_from_the_lane_and_the_web_face():
    import re

    import httpx

    from server_process import ServerProcess

    key = {"Authorization": "Key fal-mock:secret"}
    with ServerProcess(["--profile", "instant", "--log-requests"]) as server, \
            httpx.Client(base_url=server.url, headers=key) as client:
        urls = client.post(f"/queue/{WAN}", json=WAN_INPUT).json()  # the fast lane
        rid = urls["request_id"]
        client.get(urls["status_url"])
        client.get(urls["response_url"])
        ran = client.post(f"/{WAN}", json=WAN_INPUT)  # the web face (the run host)
        client.get("/fal-ai/no-such-app")
        lines = _calls_logged(server, 5)
    assert len(lines) == 5, server.output()
    line = re.compile(r"^(GET|POST) (\S+) (\d{3}) (\S+) \d+\.\d{3}ms$")
    parsed = [line.match(text).groups() for text in lines]
    assert parsed[0][:4] == ("POST", f"/queue/{WAN}", "200", rid)
    assert parsed[1][:4] == ("GET", f"/queue/fal-ai/wan-25-preview/requests/{rid}/status", "200", rid)
    assert parsed[2][:4] == ("GET", f"/queue/fal-ai/wan-25-preview/requests/{rid}", "200", rid)
    assert parsed[3][:4] == ("POST", f"/{WAN}", "200", ran.headers["x-fal-request-id"])
    assert parsed[4][:4] == ("GET", "/fal-ai/no-such-app", "404", "-")


def test_the_server_is_quiet_by_default():
    import httpx

    from server_process import ServerProcess

    with ServerProcess(["--profile", "instant"]) as server:
        httpx.post(f"{server.url}/fal-ai/wan-25-preview/image-to-image", json=WAN_INPUT,
                   headers={"Authorization": "Key fal-mock:secret"})
        with server._lock:
            banner_len = len(server.banner)
    assert server.stdout_lines[banner_len:] == [] and server.stderr_lines == [], server.output()


def test_a_journal_entry_prints_the_key_redacted():
    from mock_server.core.journal import Journal

    journal = Journal()
    entry = journal.new_entry(0.0, "POST", "/fal-ai/x", b"", [(b"authorization", b"Key abc123:s3cr3t-value"),
                                                              (b"cookie", b"fal_mock_dashboard=tok3n")])
    journal.record(entry)
    for printed in (repr(entry), str(entry), f"{[entry]}"):
        assert "s3cr3t" not in printed and "tok3n" not in printed, printed
        assert "'authorization': 'Key abc123:***'" in printed
    assert "path='/fal-ai/x'" in repr(entry)


def test_fal_client_stream_reports_that_streaming_is_not_emulated(monkeypatch):
    import fal_client
    import fal_client.client as client_module
    import httpx

    from mock_server.emulator import FalMock
    from mock_server.server.background import BackgroundServer
    from mock_server.settings import Settings

    with BackgroundServer(FalMock(Settings(profile="instant"))) as server:
        monkeypatch.setattr(client_module, "RUN_URL_FORMAT", server.url + "/")
        monkeypatch.setenv("FAL_KEY", "fal-mock:secret")
        events = list(fal_client.stream(WAN, arguments=WAN_INPUT))  # the real client, unmodified
        # what the user sees: one event naming what is not emulated (no SSEError about a content type)
        assert len(events) == 1 and events[0]["error_type"] == "not_emulated"
        assert "does not emulate fal's streaming endpoint" in events[0]["detail"]
        assert f"POST /{WAN}/stream" in events[0]["detail"] and "docs/not-emulated.md" in events[0]["detail"]
        # curl (no Accept: text/event-stream): the same body as JSON, 501
        plain = httpx.post(f"{server.url}/{WAN}/stream", json=WAN_INPUT, headers={"Authorization": "Key a:b"})
        assert plain.status_code == 501 and plain.headers["content-type"] == "application/json"
        assert plain.json() == events[0] and plain.headers["x-fal-error-type"] == "not_emulated"
        # an app the mock does not serve keeps fal's 404
        other = httpx.post(f"{server.url}/fal-ai/no-such-app/stream", json={}, headers={"Authorization": "Key a:b"})
        assert other.status_code == 404
