"""The official JS client (@fal-ai/client 1.10.1, unmodified) against real ``fal-mock serve`` processes.

Starts three servers with the CLI, runs ``node --test tests/js/`` against them through the
JS proxy route (PROTOCOL.md §8.2 C), and stops them with SIGTERM, which must exit 0:

- instant  ``--profile instant``                              FAL_MOCK_URL, FAL_MOCK_PROXY_URL
- paced    ``--profile default --speed 4``                    FAL_MOCK_PACED_PROXY_URL
           (IN_QUEUE ~0.1 s, IN_PROGRESS ~0.5-1 s: subscribe sees the request move)
- slow     ``--profile default --speed 0.01 --workers 1``     FAL_MOCK_SLOW_PROXY_URL
- harness  ``--profile default --workers 1``                  FAL_MOCK_HARNESS_URL (journal, clock, faults)
           (a request waits ~50 s in the queue: cancel finds it queued)

Needs node >= 20 and npm; installs tests/js/node_modules with ``npm ci`` when missing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from server_process import ServerProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
JS_DIR = REPO_ROOT / "tests" / "js"
CLIENT_VERSION = "1.10.1"
NODE_TIMEOUT = 300  # seconds for the whole node test run
NPM_TIMEOUT = 300

SERVERS = {
    "instant": ["--profile", "instant"],
    "paced": ["--profile", "default", "--speed", "4"],
    "slow": ["--profile", "default", "--speed", "0.01", "--workers", "1"],
    # its own server: harness.test.mjs resets it and injects faults, which would disturb others
    "harness": ["--profile", "default", "--workers", "1"],
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH: the JS client tests need node >= 20 and npm", pytrace=False)
    return path


def _installed_version() -> str | None:
    manifest = JS_DIR / "node_modules" / "@fal-ai" / "client" / "package.json"
    try:
        return json.loads(manifest.read_text("utf-8")).get("version")
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="module")
def js_deps() -> Path:
    """tests/js/node_modules with @fal-ai/client 1.10.1, installed from the lock file if needed."""
    if _installed_version() != CLIENT_VERSION:
        npm = _tool("npm")
        try:
            done = subprocess.run(
                [npm, "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund"],
                cwd=REPO_ROOT, capture_output=True, text=True, timeout=NPM_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"`npm ci --prefix tests/js` did not finish in {NPM_TIMEOUT} s\n{exc.stdout}\n{exc.stderr}", pytrace=False)
        if done.returncode != 0:
            pytest.fail(
                f"`npm ci --prefix tests/js` failed with status {done.returncode}:\n"
                f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}",
                pytrace=False,
            )
        installed = _installed_version()
        if installed != CLIENT_VERSION:
            pytest.fail(f"npm ci installed @fal-ai/client {installed!r}, expected {CLIENT_VERSION}", pytrace=False)
    return JS_DIR


def _node_env(**urls: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NODE_OPTIONS", None)
    env["FAL_KEY"] = "fal-mock:secret"
    env.update(urls)
    return env


def test_official_js_client(js_deps: Path) -> None:
    node = _tool("node")
    servers = {name: ServerProcess(args) for name, args in SERVERS.items()}
    with ExitStack() as stack:
        for server in servers.values():
            stack.callback(server.stop)  # stopped even if a later start or the run fails
        urls = {name: server.start() for name, server in servers.items()}

        for name, server in servers.items():
            assert server.exports.get("FAL_KEY"), f"{name} server printed no FAL_KEY export:\n{server.output()}"
            assert any(f"{urls[name]}/api/fal/proxy" in line for line in server.banner), (
                f"{name} server's banner does not name its JS proxy URL:\n" + "\n".join(server.banner)
            )

        env = _node_env(
            FAL_MOCK_URL=urls["instant"],
            FAL_MOCK_PROXY_URL=urls["instant"] + "/api/fal/proxy",
            FAL_MOCK_PACED_PROXY_URL=urls["paced"] + "/api/fal/proxy",
            FAL_MOCK_SLOW_PROXY_URL=urls["slow"] + "/api/fal/proxy",
            FAL_MOCK_HARNESS_URL=urls["harness"],
        )
        try:
            run = subprocess.run(
                [node, "--test", "--test-reporter=tap", "tests/js/"],
                cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=NODE_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(
                f"`node --test tests/js/` did not finish in {NODE_TIMEOUT} s\n{exc.stdout}\n{exc.stderr}"
                + "".join(f"\n=== {name} server ===\n{s.output()}" for name, s in servers.items()),
                pytrace=False,
            )
        report = f"--- node stdout ---\n{run.stdout}\n--- node stderr ---\n{run.stderr}"
        if run.returncode != 0:
            pytest.fail(
                f"`node --test tests/js/` exited {run.returncode}\n{report}"
                + "".join(f"\n=== {name} server ===\n{s.output()}" for name, s in servers.items()),
                pytrace=False,
            )
        # guard against a run that found no test files
        passed = [line for line in run.stdout.splitlines() if line.startswith("# pass ")]
        assert passed and int(passed[-1].split()[-1]) > 0, f"node ran no test\n{report}"
        failed = [line for line in run.stdout.splitlines() if line.startswith("# fail ")]
        assert failed and int(failed[-1].split()[-1]) == 0, report

    for name, server in servers.items():
        assert server.returncode == 0, (
            f"the {name} server did not exit cleanly on SIGTERM (status {server.returncode})\n{server.output()}"
        )


def test_sigterm_ends_an_open_status_stream(js_deps: Path) -> None:
    """CLI.md: SIGTERM stops the server cleanly and open streams are closed (status 0, no traceback)."""
    node = _tool("node")
    with ServerProcess(SERVERS["slow"]) as server:
        holder = subprocess.Popen(
            [node, str(JS_DIR / "hold_stream.mjs"), "FAL_MOCK_SLOW_PROXY_URL"],
            cwd=REPO_ROOT, env=_node_env(FAL_MOCK_SLOW_PROXY_URL=server.url + "/api/fal/proxy"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            first = holder.stdout.readline().strip()  # the script exits by itself after 30 s
            assert first == "open IN_QUEUE", f"{first}\n{holder.stdout.read()}"
            started = time.monotonic()
            server.stop()
            stop_seconds = time.monotonic() - started
            rest, _ = holder.communicate(timeout=30)
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
    assert server.returncode == 0, server.output()
    assert holder.returncode == 0 and rest.strip() == "done IN_QUEUE", rest
    assert not any("Traceback" in line or "ERROR" in line for line in server.stderr_lines), server.output()
    assert stop_seconds < 1.0, f"stop took {stop_seconds:.2f} s: the stream held the graceful shutdown"
