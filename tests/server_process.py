"""Run ``python -m mock_server serve`` as a real subprocess, for tests that need the CLI server.

    with ServerProcess(["--profile", "instant"]) as server:
        server.url        # http://127.0.0.1:<free port>
        server.banner     # the lines it printed before it was healthy (the ``export`` lines ...)
        server.exports    # {"FAL_KEY": ..., "FAL_RUN_HOST": ..., ...} parsed from the banner
    assert server.returncode == 0   # stopped with SIGTERM on exit

or, without ``with``: ``url = server.start(); ...; assert server.stop() == 0``.

The port is a free one unless ``--port`` is among the arguments; ``--tls`` in the
arguments makes the URL ``https://`` (the health poll then trusts the CA the server
exports as ``SSL_CERT_FILE``).  Everything the process prints on stdout and stderr is
kept (``.stdout_lines``, ``.stderr_lines``, :meth:`output`) so a failure can show it.
"""
from __future__ import annotations

import os
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Iterable, Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]

HEALTH_PATH = "/_mock/health"
POLL_INTERVAL = 0.02  # seconds between health polls
START_TIMEOUT = 10.0  # seconds until the server must answer /_mock/health


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def parse_exports(lines: Iterable[str]) -> dict[str, str]:
    """``{NAME: value}`` from ``export NAME=value`` lines (values may be shell-quoted)."""
    found: dict[str, str] = {}
    for line in lines:
        if not line.startswith("export "):
            continue
        words = shlex.split(line[len("export "):], comments=True)
        if words and "=" in words[0]:
            name, _, value = words[0].partition("=")
            found[name] = value
    return found


class ServerStartError(RuntimeError):
    """The server exited or did not become healthy in time; the message carries its output."""


class ServerProcess:
    """One ``fal-mock serve`` subprocess: start(args) -> base URL; stop() -> exit status."""

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        command: Sequence[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        """``args``: extra ``serve`` flags.  ``env``: variables set on top of this process's
        environment (a value of None removes one).  ``command``: what runs before the flags,
        default ``[sys.executable, "-m", "mock_server", "serve"]``."""
        self.args = list(args)
        self.env = dict(env or {})
        self.host = host
        self.command = list(command) if command is not None else [sys.executable, "-m", "mock_server", "serve"]
        self.cwd = str(cwd) if cwd is not None else str(REPO_ROOT)
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self.url: str | None = None
        self.argv: list[str] = []
        self.banner: list[str] = []
        self.exports: dict[str, str] = {}
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.returncode: int | None = None
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()

    # -- life cycle ----------------------------------------------------------------------
    def start(self, args: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> str:
        """Start the server (``args``/``env`` add to the constructor's) and wait until
        ``GET /_mock/health`` answers 200.  Returns the base URL, e.g. ``http://127.0.0.1:PORT``."""
        if self.process is not None:
            raise RuntimeError("this ServerProcess was already started")
        flags = self.args + list(args or ())
        merged_env = {**self.env, **dict(env or {})}
        self.port = _flag_value(flags, "--port")
        if self.port is None:
            self.port = free_port(self.host)
            flags = ["--port", str(self.port)] + flags
        if _flag_value(flags, "--host", cast=str) is None:
            flags = ["--host", self.host] + flags
        scheme = "https" if "--tls" in flags else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{scheme}://{host}:{self.port}"
        self.argv = self.command + flags

        environ = dict(os.environ)
        environ["PYTHONUNBUFFERED"] = "1"
        for name, value in merged_env.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        self._readers = [
            _reader(self.process.stdout, self.stdout_lines, self._lock),
            _reader(self.process.stderr, self.stderr_lines, self._lock),
        ]
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_healthy(self) -> None:
        assert self.process is not None and self.url is not None
        deadline = time.monotonic() + self.start_timeout
        health = self.url + HEALTH_PATH
        last_error: object = None
        while True:
            if self.process.poll() is not None:
                self._join_readers()
                raise ServerStartError(
                    f"fal-mock exited with status {self.process.returncode} before it was healthy\n"
                    f"command: {shlex.join(self.argv)}\n{self.output()}"
                )
            try:
                with urllib.request.urlopen(health, timeout=1.0, context=self._ssl_context()) as response:
                    if response.status == 200:
                        break
                    last_error = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
                last_error = exc
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"fal-mock did not answer {health} with 200 within {self.start_timeout:g} s "
                    f"(last: {last_error})\ncommand: {shlex.join(self.argv)}\n{self.output()}"
                )
            time.sleep(POLL_INTERVAL)
        # The banner is printed (and flushed) before the server listens, so it is all in the
        # pipe once health answers; its last line names the health URL (spec/CLI.md).  Give
        # the reader thread a bounded moment to hand it over.
        banner_deadline = time.monotonic() + 1.0
        while time.monotonic() < banner_deadline:
            with self._lock:
                if any(HEALTH_PATH in line for line in self.stdout_lines):
                    break
            time.sleep(0.005)
        with self._lock:
            self.banner = list(self.stdout_lines)
        self.exports = parse_exports(self.banner)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.url or not self.url.startswith("https:"):
            return None
        with self._lock:
            cafile = parse_exports(self.stdout_lines).get("SSL_CERT_FILE")
        if cafile:
            return ssl.create_default_context(cafile=cafile)
        return ssl.create_default_context()  # fails until the banner names the CA; polled again

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait (SIGKILL after ``timeout`` s) and return the exit status (0 = clean).

        A server killed after the timeout returns a negative status.  Safe to call twice."""
        process = self.process
        if process is None:
            return self.returncode
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                self.stderr_lines.append(f"[ServerProcess] killed: no exit {timeout:g} s after SIGTERM")
        self._join_readers()
        self.returncode = process.returncode
        return self.returncode

    def _join_readers(self) -> None:
        for thread in self._readers:
            thread.join(5.0)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """Everything printed so far, stdout then stderr, for failure messages."""
        with self._lock:
            out, err = "\n".join(self.stdout_lines), "\n".join(self.stderr_lines)
        return f"--- stdout ---\n{out}\n--- stderr ---\n{err}"

    def __enter__(self) -> "ServerProcess":
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else f"exit={self.returncode}"
        return f"<ServerProcess {self.url or '(not started)'} {state}>"


def _flag_value(flags: Sequence[str], name: str, cast=int):
    """The value of ``--name V`` or ``--name=V`` among the flags, else None."""
    for i, flag in enumerate(flags):
        if flag == name and i + 1 < len(flags):
            return cast(flags[i + 1])
        if flag.startswith(name + "="):
            return cast(flag.split("=", 1)[1])
    return None


def _reader(stream: IO[str] | None, sink: list[str], lock: threading.Lock) -> threading.Thread:
    def run() -> None:
        if stream is None:
            return
        for line in stream:
            with lock:
                sink.append(line.rstrip("\n"))
        stream.close()

    thread = threading.Thread(target=run, name="fal-mock-output", daemon=True)
    thread.start()
    return thread


def serve_with_state(tmp_path_factory, *flags: str):
    """A fixture's body: ``fal-mock serve FLAGS`` with a state folder of its own (it holds the
    TLS CA and the saved state), yielded; afterwards the server must have exited with 0."""
    state_dir = tmp_path_factory.mktemp("state")
    with ServerProcess([*flags, "--state-dir", str(state_dir)]) as server:
        yield server
    assert server.returncode == 0, server.output()
