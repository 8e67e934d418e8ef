"""The command line as users and scripts see it (spelling in shared/spec/CLI.md)."""
from __future__ import annotations

import shutil
import subprocess
import sys

import httpx

from server_process import ServerProcess


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mock_server", *args], capture_output=True, text=True, timeout=60)


def test_env_prints_the_export_lines_for_those_flags(tmp_path):
    done = run_cli("env", "--port", "9555", "--keys", "abc:def,ghi:jkl")
    assert done.returncode == 0
    assert done.stdout.splitlines()[:3] == [
        "export FAL_KEY=abc:def",
        "export FAL_RUN_HOST=127.0.0.1:9555",
        "export FAL_QUEUE_RUN_HOST=127.0.0.1:9555/queue",
    ]
    assert "http://127.0.0.1:9555/api/fal/proxy" in done.stdout


def test_env_with_tls_creates_the_ca_once_and_names_it(tmp_path):
    first = run_cli("env", "--tls", "--state-dir", str(tmp_path))
    lines = dict(line.split("=", 1) for line in first.stdout.splitlines() if line.startswith("export "))
    assert lines["export SSL_CERT_FILE"] == str(tmp_path / "tls" / "bundle.pem")
    assert lines["export NODE_EXTRA_CA_CERTS"] == str(tmp_path / "tls" / "ca.pem")
    ca = (tmp_path / "tls" / "ca.pem").read_bytes()
    run_cli("env", "--tls", "--state-dir", str(tmp_path))
    assert (tmp_path / "tls" / "ca.pem").read_bytes() == ca, "the CA is reused across runs"


def test_serve_prints_the_banner_first_and_exits_0_on_sigterm():
    with ServerProcess(["--profile", "instant", "--no-auth"]) as server:
        assert server.banner[0].startswith("export FAL_KEY=")
        assert server.banner[-1] == f"# health: {server.url}/_mock/health"
        assert httpx.post(f"{server.url}/queue/fal-ai/wan-25-preview/image-to-image",
                          json={"prompt": "x", "image_urls": ["https://example.com/a.png"]}).status_code == 200
    assert server.returncode == 0


def test_the_console_script_is_installed():
    script = shutil.which("fal-mock")
    assert script, "pip install puts fal-mock on PATH"
    done = subprocess.run([script, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--profile" in done.stdout


def test_bad_flags_are_refused_with_a_message():
    done = run_cli("serve", "--workers", "0")
    assert done.returncode != 0 and "--workers must be at least 1" in done.stderr
    done = run_cli("serve", "--profile", "slow")
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_the_request_head_timeout_flag_reaches_the_settings():
    import argparse

    from mock_server import cli

    parser = argparse.ArgumentParser()
    cli._add_server_flags(parser)
    assert cli.settings_from(parser.parse_args(["--request-head-timeout", "2.5"])).request_head_timeout == 2.5
    done = run_cli("serve", "--request-head-timeout", "0")
    assert done.returncode != 0 and "--request-head-timeout must be greater than 0" in done.stderr
