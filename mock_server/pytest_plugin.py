"""The pytest plugin (entry point ``pytest11``): a ``fal_mock`` fixture for any test suite.

``pip install fal-mock`` is enough: one mock server starts per test session, in a
background thread of the test process on a free port, and each test that asks for
``fal_mock`` gets it reset (requests, files, journal, faults, clock) and the real
``fal_client`` (sync, async, uploads) pointed at it::

    def test_my_app(fal_mock):
        fal_mock.fail_next("submit", status=503)
        result = my_app.edit_image("a cat")          # calls fal_client inside
        assert fal_mock.requests(kind="submit")[-1].json["prompt"] == "a cat"

    @pytest.mark.fal_mock(profile="default", polls=3)
    def test_progress(fal_mock): ...

Markers take the keywords of :meth:`FalMockFixture.configure` plus ``strict`` (default
True: at teardown, a one-shot fault that never fired fails the test) and record and replay's
``replay="tests/cassettes"`` (answers from recorded cassettes, relative to the rootdir),
``replay_strict`` (default True: a call with no recording fails with the closest recorded
inputs; False: the emulator answers it) and ``replay_ignore=("seed",)``.  ``pytest
--fal-record`` records the missing cassettes through the real API with ``FAL_KEY``
(``--fal-upstream URL``: through another server speaking fal's protocol), as pytest-recording
does; see docs/record-replay.md.

With ``FAL_MOCK_URL`` set (``http://host:port`` of a running ``fal-mock serve``), no server is
started: the fixture uses that one, in a namespace of its own (docs/namespaces.md), so test
processes sharing it never see each other's calls (:class:`RemoteFalMock`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

DEFAULT_OPTIONS: dict[str, Any] = {
    "profile": "instant", "speed": 1.0, "workers": 2, "validation": "documented",
    "polls": None, "auth": True, "keys": (), "allow_fetch": False,
}
KEY = "fal-mock:secret"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fal_mock(profile=, speed=, workers=, validation=, polls=, auth=, keys=, allow_fetch=, strict=, "
        "replay=, replay_strict=, replay_ignore=): "
        "configure the fal_mock fixture for this test",
    )
    # the user's own key, before any test points FAL_KEY at the mock (used by --fal-record)
    config.stash[_REAL_KEY] = os.environ.get("FAL_KEY")


_REAL_KEY = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fal-mock")
    group.addoption("--fal-record", action="store_true", default=False,
                    help="fal_mock replay markers: record missing cassettes through the real fal API (needs FAL_KEY)")
    group.addoption("--fal-upstream", default=None, metavar="URL",
                    help="with --fal-record: record through a server speaking fal's protocol at URL instead")


def _use_replay(fixture: "FalMockFixture", config: pytest.Config, folder: str | os.PathLike,
                strict: bool, ignored: tuple[str, ...]) -> Callable[[], None]:
    """Put the cassette folder of a ``replay=`` marker in front of the session's mock for one
    test; returns what takes it away."""
    from mock_server.features import cassettes

    root = Path(folder) if Path(folder).is_absolute() else config.rootpath / folder
    store = cassettes.CassetteDir(root)
    own_file = cassettes.own_file_finder(fixture.mock)
    if config.getoption("--fal-record"):
        key = config.stash.get(_REAL_KEY, None)
        if not key or key == KEY:
            pytest.fail("fal_mock: --fal-record records through the real fal API and needs your key: set FAL_KEY "
                        "in the environment of pytest (or run without --fal-record to replay only)", pytrace=False)
        recorder = cassettes.Recorder(store, cassettes.Upstream.of(config.getoption("--fal-upstream")), key)
        shelf = cassettes.Shelf(store, on_miss=cassettes.RECORD, recorder=recorder, ignored=ignored,
                                own_file=own_file, caller_key=cassettes.caller_key_finder(fixture.mock))
    else:
        shelf = cassettes.Shelf(store, on_miss=cassettes.REFUSE if strict else cassettes.EMULATE,
                                ignored=ignored, own_file=own_file)
    return fixture.server.call(lambda: cassettes.use_cassettes(fixture.mock, shelf))


class FalMockFixture:
    """What a test sees of the mock (the ``fal_mock`` fixture).

    Attributes: ``url`` (the server, http), ``run_url`` / ``queue_url`` (what
    ``fal_client`` is pointed at), ``key``, ``mock`` (the :class:`~mock_server.emulator.FalMock`),
    ``clock`` (freeze / advance), ``faults`` (the :class:`~mock_server.core.faults.FaultPlan`),
    ``journal``.  Calls that change server state run on the server's own thread.
    """

    def __init__(self, server) -> None:
        self.server = server
        self.mock = server.mock
        self.url: str = server.url
        self.run_url = self.url + "/"
        self.queue_url = self.url + self.mock.settings.queue_prefix + "/"
        self.proxy_url = self.url + "/api/fal/proxy"
        self.key = KEY
        from mock_server.core.namespaces import key_namespace

        #: the namespace its calls are in (the key's id); the fixture owns the whole server
        self.namespace = key_namespace(b"Key " + KEY.encode())
        self.clock = self.mock.clock
        self.faults = self.mock.faults
        self.journal = self.mock.journal
        #: Webhook deliveries and switches: ``configure(bad_signature=...)``, ``deliveries``,
        #: ``wait_for_deliveries(n)``.
        self.webhooks = server.mock.webhooks

    # -- steering ---------------------------------------------------------------------
    def configure(self, **options: Any) -> None:
        """Timing (``profile``, ``speed``, ``workers``, ``polls``), ``validation``, ``auth``,
        ``keys``, ``allow_fetch``: as the CLI flags of the same names."""
        self.server.call(lambda: self.mock.configure(**options))

    def reset(self) -> None:
        """Forget requests, files, journal and faults; clock back to real time."""
        self.server.call(self.mock.reset)

    def fail_next(self, on: str = "any", **fault: Any):
        """Make the next matching call fail once, e.g. ``fail_next("status", status=503)``,
        ``fail_next("submit", kind="model_error", error_type="content_policy_violation")``."""
        return self.faults.add(on, times=1, **fault)

    def add_fault(self, on: str = "any", **rule: Any):
        """A fault rule (see :class:`~mock_server.core.faults.FaultPlan.add`)."""
        return self.faults.add(on, **rule)

    # -- looking ----------------------------------------------------------------------
    def requests(self, **filters: Any):
        """Journal entries (oldest first); filters: kind, method, path, request_id, status, since."""
        return self.journal.entries(**filters)

    def status_of(self, request_id: str) -> str | None:
        """The queue status of a request (IN_QUEUE, IN_PROGRESS, COMPLETED), None if unknown."""
        def look():
            found = self.mock.queue.get(request_id)
            return found.status if found is not None else None
        return self.server.call(look)

    def __repr__(self) -> str:
        return f"<fal_mock {self.url}>"


def _wire_fal_client(fixture: FalMockFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the real fal_client at the mock for one test (PROTOCOL.md §8.1 B)."""
    try:
        import fal_client
        import fal_client.client as client_module
    except ImportError:
        return
    url = fixture.url
    monkeypatch.setattr(client_module, "RUN_URL_FORMAT", fixture.run_url)
    monkeypatch.setattr(client_module, "QUEUE_URL_FORMAT", fixture.queue_url)
    monkeypatch.setattr(client_module, "REALTIME_URL_FORMAT", url.replace("http", "ws", 1) + "/")
    monkeypatch.setattr(client_module, "REST_URL", url + "/_mock/rest")
    monkeypatch.setattr(client_module, "CDN_URL", url + "/_mock/cdn")
    monkeypatch.setenv("FAL_KEY", fixture.key)
    # The module-level clients cache credentials, HTTP clients (bound to an event loop)
    # and the CDN token manager (which captured REST_URL): drop them so this test's
    # settings apply; they are rebuilt on first use.
    for client in (fal_client.sync_client, fal_client.async_client):
        for name in ("_auth", "_client", "_token_manager"):
            client.__dict__.pop(name, None)


@pytest.fixture(scope="session")
def fal_mock_server() -> Iterator[Any]:
    """The session's mock server (a BackgroundServer); most tests want ``fal_mock``.  With
    ``FAL_MOCK_URL`` set: that server, reached over HTTP (a :class:`RemoteServer`)."""
    if os.environ.get(REMOTE_URL_ENV):
        yield RemoteServer.from_environment()
        return
    from mock_server.server.background import BackgroundServer
    from mock_server.emulator import FalMock
    from mock_server.settings import Settings

    server = BackgroundServer(FalMock(Settings(profile="instant"))).start()
    yield server
    server.stop()


@pytest.fixture
def fal_mock(fal_mock_server, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[FalMockFixture]:
    """A reset mock with ``fal_client`` wired to it; configured by ``@pytest.mark.fal_mock(...)``."""
    options = dict(DEFAULT_OPTIONS)
    for marker in reversed(list(request.node.iter_markers("fal_mock"))):
        options.update(marker.kwargs)  # the closest marker wins
    strict = options.pop("strict", True)
    replay = options.pop("replay", None)
    replay_strict = options.pop("replay_strict", True)
    replay_ignore = tuple(options.pop("replay_ignore", ()))
    if isinstance(fal_mock_server, RemoteServer):
        if replay is not None:
            pytest.fail("fal_mock(replay=...) needs the fixture's own server: unset FAL_MOCK_URL, "
                        "or start the shared server with --replay DIR", pytrace=False)
        yield from _remote_fixture(fal_mock_server, request, monkeypatch, strict)
        return
    fixture = FalMockFixture(fal_mock_server)
    fixture.reset()
    fixture.configure(**options)
    undo_replay = None
    if replay is not None:
        undo_replay = _use_replay(fixture, request.config, replay, replay_strict, replay_ignore)
    _wire_fal_client(fixture, monkeypatch)
    try:
        yield fixture
    finally:
        if undo_replay is not None:
            fal_mock_server.call(undo_replay)
    unused = [rule for rule in fixture.faults.rules
              if strict and rule.times is not None and rule.probability == 1.0 and rule.fired == 0]
    fixture.faults.clear()
    if unused:
        pytest.fail("fal_mock: fault rule(s) never fired: "
                    + ", ".join(f"{r.id} on={r.on} {r.fault.label}" for r in unused)
                    + " (pass strict=False in the fal_mock marker to allow this)", pytrace=False)


# -- a server shared with other processes (FAL_MOCK_URL) ----------------------------------------
#: ``http://host:port`` of a running fal-mock: the fixture uses it instead of starting one.
REMOTE_URL_ENV = "FAL_MOCK_URL"
#: Its admin token, when it was started with ``--admin-token``.
REMOTE_TOKEN_ENV = "FAL_MOCK_ADMIN_TOKEN"
#: The namespace this test process uses there (default: one of its own, new per session).
REMOTE_NAMESPACE_ENV = "FAL_MOCK_NAMESPACE"


class RemoteServer:
    """A fal-mock server another process runs, steered through its control API in one
    namespace: this process's requests, journal, faults and uploads are its own."""

    def __init__(self, url: str, namespace: str, admin_token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.admin_token = admin_token

    @classmethod
    def from_environment(cls) -> "RemoteServer":
        import secrets

        namespace = os.environ.get(REMOTE_NAMESPACE_ENV) or f"pytest-{os.getpid()}-{secrets.token_hex(4)}"
        if namespace == "*":  # the fixture resets its namespace before each test: never everyone's
            raise pytest.UsageError(f"{REMOTE_NAMESPACE_ENV}=* would reset every namespace of the shared "
                                    "server before each test: name one namespace, or leave it unset")
        return cls(os.environ[REMOTE_URL_ENV], namespace, os.environ.get(REMOTE_TOKEN_ENV) or None)

    def control(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """Call ``/_mock/{path}`` in this namespace; the answer's JSON."""
        import json
        import urllib.error
        import urllib.parse
        import urllib.request

        params = {"namespace": self.namespace, **{k: v for k, v in query.items() if v is not None}}
        url = f"{self.url}/_mock/{path}?{urllib.parse.urlencode(params)}"
        headers = {"content-type": "application/json"}
        if self.admin_token:
            headers["x-fal-mock-admin-token"] = self.admin_token
        data = None if body is None else json.dumps(body).encode()
        call = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(call, timeout=30) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise RuntimeError(f"fal-mock at {self.url}: {method} /_mock/{path} answered {exc.code}: "
                               f"{exc.read()[:300]!r}") from None


class RemoteEntry:
    """A journal entry as the control API lists it (attributes as :class:`JournalEntry`'s)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)
        self.json = data.get("body")

    def __repr__(self) -> str:
        return f"<RemoteEntry {self.__dict__.get('method')} {self.__dict__.get('path')} {self.__dict__.get('status')}>"


class RemoteFalMock:
    """The ``fal_mock`` fixture against a shared server (``FAL_MOCK_URL``): the same steering
    and looking as :class:`FalMockFixture`, over HTTP, in this process's namespace.  The
    client key is ``<namespace>:secret`` (the key's id chooses the namespace, and the official
    clients send nothing else), so the shared server must accept any key (no ``--keys``).
    ``configure`` changes the server's settings, which every namespace shares: only a test's
    ``fal_mock`` marker calls it.  The clock is the server's too: not steered from here."""

    def __init__(self, server: RemoteServer) -> None:
        self.server = server
        self.url = server.url
        self.namespace = server.namespace
        self.run_url = self.url + "/"
        from mock_server.settings import QUEUE_PREFIX

        self.queue_url = self.url + QUEUE_PREFIX + "/"
        self.proxy_url = self.url + "/api/fal/proxy"
        self.key = f"{self.namespace}:secret"

    def configure(self, **options: Any) -> None:
        """Server-wide settings (every namespace shares them), as ``POST /_mock/config``."""
        import json
        import urllib.request

        body = {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()}
        # not self.server.control: the config is the server's, and refuses a ?namespace=
        headers = {"content-type": "application/json"}
        if self.server.admin_token:
            headers["x-fal-mock-admin-token"] = self.server.admin_token
        call = urllib.request.Request(self.url + "/_mock/config", data=json.dumps(body).encode(),
                                      method="POST", headers=headers)
        with urllib.request.urlopen(call, timeout=30):
            pass

    def reset(self) -> None:
        """Forget this namespace's requests, uploads, journal and faults (nobody else's)."""
        self.server.control("POST", "reset")

    def fail_next(self, on: str = "any", **fault: Any) -> dict[str, Any]:
        return self.add_fault(on, times=1, **fault)

    def add_fault(self, on: str = "any", **rule: Any) -> dict[str, Any]:
        """A fault rule for this namespace's calls only; returns the rule as the server lists it."""
        return self.server.control("POST", "faults", {"on": on, **rule})

    def fault_rules(self) -> list[dict[str, Any]]:
        return self.server.control("GET", "faults")["rules"]

    def requests(self, **filters: Any) -> list[RemoteEntry]:
        """This namespace's journal entries (oldest first); filters as the in-process fixture's."""
        kind = filters.pop("kind", None)
        if kind is not None and not isinstance(kind, str):
            kind = ",".join(kind)
        answer = self.server.control("GET", "requests", kind=kind, **filters)
        return [RemoteEntry(item) for item in answer["requests"]]

    def status_of(self, request_id: str) -> str | None:
        found = self.server.control("GET", f"queue/{request_id}")
        return None if found is None else found["status"]

    def __repr__(self) -> str:
        return f"<fal_mock {self.url} namespace={self.namespace}>"


def _remote_fixture(server: RemoteServer, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                    strict: bool) -> Iterator[RemoteFalMock]:
    fixture = RemoteFalMock(server)
    fixture.reset()
    markers = list(request.node.iter_markers("fal_mock"))
    options: dict[str, Any] = {}
    for marker in reversed(markers):
        options.update(marker.kwargs)
    options.pop("strict", None)
    if options:  # server-wide: only what the test asked for
        fixture.configure(**options)
    _wire_fal_client(fixture, monkeypatch)  # type: ignore[arg-type]
    yield fixture
    rules = fixture.fault_rules()
    unused = [r for r in rules if strict and r["times"] is not None and r["probability"] == 1.0 and r["fired"] == 0]
    server.control("DELETE", "faults")
    if unused:
        pytest.fail("fal_mock: fault rule(s) never fired: "
                    + ", ".join(f"{r['id']} on={r['on']}" for r in unused)
                    + " (pass strict=False in the fal_mock marker to allow this)", pytrace=False)
