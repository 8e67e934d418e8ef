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
    """The session's mock server (a BackgroundServer); most tests want ``fal_mock``."""
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
