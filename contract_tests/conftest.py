"""The contract suite's switchboard: target, cost guards, ordering, recording, drift report.

``--target mock`` (default) starts ``fal-mock serve --tls --profile default --speed 20`` with
tests/server_process.py and points the *unmodified* ``fal_client`` at it in this process:
``fal_client.client.RUN_URL_FORMAT`` / ``QUEUE_URL_FORMAT`` (module globals read at call
time) and ``SSL_CERT_FILE`` (read by httpx when a client is built), all set by a session
fixture through ``pytest.MonkeyPatch`` and undone when the suite ends, so nothing leaks
into the rest of a ``python -m pytest`` run.  ``--target live`` patches nothing.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contract_tests.shape_diff import diff_sets, load_recordings
from contract_tests.support import APP, PRICE_PER_IMAGE_USD, BudgetExceeded, ImageBudget, scrub

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RECORDED_DIR = REPO / "fixtures" / "recorded"
MOCK_SHAPES_DIR = REPO / "fixtures" / "mock-shapes"

if str(REPO / "tests") not in sys.path:
    sys.path.append(str(REPO / "tests"))  # tests/server_process.py: ServerProcess

MOCK_ARGS = ["--tls", "--profile", "default", "--speed", "20"]
LIVE_QUEUE = "https://queue.fal.run/"
LIVE_RUN = "https://fal.run/"

_budget_key = pytest.StashKey[ImageBudget]()
_drift_key = pytest.StashKey[list]()
_shapes_key = pytest.StashKey[dict]()
_notes_key = pytest.StashKey[dict]()
_ran_key = pytest.StashKey[bool]()


# --------------------------------------------------------------------------- options / markers


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fal-contract", "fal contract tests (contract_tests/)")
    group.addoption("--target", choices=("mock", "live"), default="mock",
                    help="mock: start fal-mock and test it (default); live: the real fal.ai API (needs FAL_KEY, costs money)")
    group.addoption("--costly", action="store_true",
                    help=f"live: also run tests that generate images (${PRICE_PER_IMAGE_USD:.2f} per image)")
    group.addoption("--max-images", type=int, default=2, metavar="N",
                    help="live: refuse any test that would take the run past N generated images (default 2)")
    group.addoption("--mock-arg", action="append", default=[], metavar="FLAG",
                    help="mock: an extra flag for fal-mock serve, repeatable (e.g. --mock-arg=--validation=published)")
    group.addoption("--record", action="store_true",
                    help="write scrubbed responses: live -> fixtures/recorded/, mock -> fixtures/mock-shapes/")
    group.addoption("--endpoint", action="append", default=[], metavar="ENDPOINT_ID",
                    help="run the free 422 checks derived from the catalogue schema of this endpoint id "
                         "(repeatable; default: fal-ai/wan-25-preview/image-to-image; docs/catalog.md)")


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "costly: generates images on the real service (skipped on --target live unless --costly)",
        "validation: a documented-profile validation rule (cheap: answered with a 422)",
        "canary: submit-then-cancel probe (cheap on live when the cancel lands in time)",
        "raw_http: sent with httpx, because fal_client cannot send that body",
    ):
        config.addinivalue_line("markers", line)
    config.stash[_drift_key] = []
    config.stash[_shapes_key] = {}
    config.stash[_notes_key] = {}
    config.stash[_ran_key] = False
    target = config.getoption("--target")
    limit = config.getoption("--max-images")
    config.stash[_budget_key] = ImageBudget(limit=limit if target == "live" else None)
    if target == "live" and not os.environ.get("FAL_KEY", "").strip():
        pytest.exit(
            "contract_tests --target live needs FAL_KEY (a fal.ai API key, 'key_id:key_secret'): "
            "FAL_KEY=... pytest contract_tests --target live. Nothing was sent.",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


def _order(item: pytest.Item) -> int:
    """Cheap first: 422 rules, then canaries, then other free tests, then what may cost."""
    costly = item.get_closest_marker("costly") is not None
    if item.get_closest_marker("validation") is not None:
        return 3 if costly else 0
    if item.get_closest_marker("canary") is not None:
        return 1
    return 4 if costly else 2


def _is_contract(item: pytest.Item) -> bool:
    try:
        return Path(str(item.path)).resolve().is_relative_to(HERE)
    except (OSError, ValueError):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slots = [i for i, item in enumerate(items) if _is_contract(item)]
    if not slots:
        return
    ours = sorted((items[i] for i in slots), key=_order)  # stable: file order within a tier
    for i, item in zip(slots, ours):
        items[i] = item
    if config.getoption("--target") == "live" and not config.getoption("--costly"):
        skip = pytest.mark.skip(reason=f"costly on live (${PRICE_PER_IMAGE_USD:.2f}/image): pass --costly to run it")
        for item in ours:
            if item.get_closest_marker("costly") is not None:
                item.add_marker(skip)


# --------------------------------------------------------------------------- the target


@dataclass
class Target:
    """Where the suite sends requests, and how (shared by every test function)."""

    name: str  # "mock" | "live"
    client: Any  # fal_client.SyncClient
    key: str
    run_url: str  # the sync endpoint URL (fal.run or the mock)
    queue_url: str  # the queue submit URL
    http: Any  # httpx.Client with the key, for bodies fal_client cannot send
    download: Any  # httpx.Client without credentials, for image URLs
    run_timeout: float  # client-side timeout of one run()
    deadline: float  # seconds a queued request may take end to end
    interval: float  # status poll interval
    budget: ImageBudget
    server: Any = None

    @property
    def live(self) -> bool:
        return self.name == "live"

    def run(self, body: Any, app: str = APP) -> tuple[int, Any, dict]:
        """``fal_client.run`` on the sync endpoint: (status, JSON body, headers), errors included."""
        import fal_client

        try:
            result = self.client.run(app, body, timeout=self.run_timeout)
            return 200, result, {}
        except fal_client.client.FalClientHTTPError as exc:
            return exc.status_code, _json(exc.response), dict(exc.response_headers)

    def post_raw(self, content: bytes) -> tuple[int, Any, dict]:
        response = self.http.post(self.run_url, content=content, headers={"Content-Type": "application/json"},
                                  timeout=self.run_timeout)
        return response.status_code, _json(response), dict(response.headers)


def _json(response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"<non-json>": response.text[:500]}


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory):
    import fal_client
    import httpx

    pytestconfig.stash[_ran_key] = True
    budget = pytestconfig.stash[_budget_key]
    if pytestconfig.getoption("--target") == "live":
        key = os.environ["FAL_KEY"].strip()
        _live_preflight(key)
        client = fal_client.SyncClient(key=key, default_timeout=60.0)
        http = httpx.Client(headers={"Authorization": f"Key {key}"}, timeout=60.0, follow_redirects=True)
        download = httpx.Client(timeout=60.0, follow_redirects=True)
        try:
            yield Target("live", client, key, LIVE_RUN + APP, LIVE_QUEUE + APP, http, download,
                         run_timeout=300.0, deadline=600.0, interval=1.0, budget=budget)
        finally:
            http.close()
            download.close()
        return

    from server_process import ServerProcess

    state = tmp_path_factory.mktemp("fal-mock-state")
    server = ServerProcess(MOCK_ARGS + ["--state-dir", str(state)] + pytestconfig.getoption("--mock-arg"))
    server.start()
    patch = pytest.MonkeyPatch()
    try:
        exports = server.exports
        run_format = f"https://{exports['FAL_RUN_HOST']}/"
        queue_format = f"https://{exports['FAL_QUEUE_RUN_HOST']}/"
        # httpx reads SSL_CERT_FILE when a client is built: set it before any client exists.
        patch.setenv("SSL_CERT_FILE", exports["SSL_CERT_FILE"])
        patch.setattr(fal_client.client, "RUN_URL_FORMAT", run_format)
        patch.setattr(fal_client.client, "QUEUE_URL_FORMAT", queue_format)
        key = exports["FAL_KEY"]
        client = fal_client.SyncClient(key=key, default_timeout=30.0)
        http = httpx.Client(headers={"Authorization": f"Key {key}"}, timeout=30.0)
        download = httpx.Client(timeout=30.0)
        try:
            yield Target("mock", client, key, run_format + APP, queue_format + APP, http, download,
                         run_timeout=60.0, deadline=60.0, interval=0.05, budget=budget, server=server)
        finally:
            http.close()
            download.close()
    finally:
        patch.undo()
        server.stop()


def _live_preflight(key: str) -> None:
    """Fail fast (no retries, 10 s) when fal is unreachable or the key is refused."""
    import httpx

    url = f"{LIVE_QUEUE}fal-ai/wan-25-preview/requests/{uuid.uuid4()}/status"
    try:
        response = httpx.get(url, headers={"Authorization": f"Key {key}"}, timeout=10.0)
    except httpx.HTTPError as exc:
        pytest.exit(f"contract_tests --target live: cannot reach {LIVE_QUEUE} ({type(exc).__name__}: {exc}). "
                    "Check the network; nothing was billed.", returncode=3)
    if response.status_code in (401, 403):
        pytest.exit(f"contract_tests --target live: fal refused FAL_KEY (HTTP {response.status_code}: "
                    f"{response.text[:200]}).", returncode=3)


# --------------------------------------------------------------------------- per-test helpers


@pytest.fixture
def budget(target: Target) -> ImageBudget:
    return target.budget


@pytest.fixture
def spend(target: Target, request: pytest.FixtureRequest):
    """``spend(n)``: reserve n images for this test, or skip it when the budget is exhausted."""

    def reserve(n: int = 1) -> None:
        try:
            target.budget.reserve(n, request.node.nodeid)
        except BudgetExceeded as exc:
            pytest.skip(str(exc))

    return reserve


@pytest.fixture
def record(target: Target, request: pytest.FixtureRequest, pytestconfig: pytest.Config):
    """``record(label, status, body)``: keep a response (scrubbed) for --record and the shape diff."""
    responses: list[dict] = []

    def add(label: str, status: int | None, body: Any) -> None:
        responses.append({"label": label, "status": status, "body": scrub(body, [target.key])})

    yield add
    if not responses:
        return
    name = _file_name(request.node)
    pytestconfig.stash[_shapes_key][name] = responses
    if pytestconfig.getoption("--record"):
        out = RECORDED_DIR if target.live else MOCK_SHAPES_DIR
        out.mkdir(parents=True, exist_ok=True)
        document = {"test": request.node.nodeid, "target": target.name, "recorded_at": time.strftime("%Y-%m-%d"),
                    "responses": responses}
        (out / f"{name}.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def _file_name(node: pytest.Item) -> str:
    module = Path(str(node.path)).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{module}__{node.name}").strip("_")


@dataclass
class DriftRow:
    rule: str
    kind: str  # schema | raw | accepted | typed
    expected: str
    got: str
    agree: bool
    published_agree: bool | None = None
    note: str = ""


@pytest.fixture
def drift(pytestconfig: pytest.Config):
    """``drift(row)``: add a row to the end-of-run drift report."""
    return pytestconfig.stash[_drift_key].append


@pytest.fixture
def observe(pytestconfig: pytest.Config):
    """``observe(topic, value)``: count a side observation for the report (e.g. a header seen)."""
    notes = pytestconfig.stash[_notes_key]

    def add(topic: str, value: Any) -> None:
        counts = notes.setdefault(topic, {})
        counts[repr(value)] = counts.get(repr(value), 0) + 1

    return add


# --------------------------------------------------------------------------- the report


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if not config.stash.get(_ran_key, False):
        return
    write = terminalreporter.write_line
    target = config.getoption("--target")
    rows: list[DriftRow] = config.stash[_drift_key]
    terminalreporter.write_sep("=", f"fal contract drift report (target: {target}, expected: documented profile)")
    if rows:
        width = max(len(r.rule) for r in rows) + 2
        write(f"{'rule':<{width}}{'verdict':<10}{'published':<11}expected -> got")
        for r in rows:
            published = "-" if r.published_agree is None else ("agree" if r.published_agree else "disagree")
            write(f"{r.rule:<{width}}{('agree' if r.agree else 'DISAGREE'):<10}{published:<11}{r.expected} -> {r.got}")
        documented_ok = sum(r.agree for r in rows)
        with_published = [r for r in rows if r.published_agree is not None]
        write("")
        write(f"documented profile: {documented_ok}/{len(rows)} rules agree")
        if with_published:
            write(f"published profile:  {sum(bool(r.published_agree) for r in with_published)}/{len(with_published)} rules agree")
        disagreements = [r for r in rows if not r.agree]
        write(f"disagreements with the documented profile ({len(disagreements)}):")
        for r in disagreements:
            write(f"  - {r.rule}: expected {r.expected}; got {r.got}" + (f"  [{r.note}]" if r.note else ""))
        if not disagreements:
            write("  none")
    else:
        write("no validation rule ran")
    skipped = _skipped_rules(terminalreporter)
    if skipped:
        write(f"not checked ({len(skipped)}): " + ", ".join(f"{rule} ({why})" for rule, why in skipped))
    for topic, counts in config.stash[_notes_key].items():
        write(f"observed {topic}: " + ", ".join(f"{value} x{n}" for value, n in counts.items()))
    budget: ImageBudget = config.stash[_budget_key]
    limit = "no budget on the mock" if budget.limit is None else f"budget --max-images {budget.limit}"
    write(f"images generated (or possibly generated): {budget.spent} "
          f"(~${budget.spent * PRICE_PER_IMAGE_USD:.2f} on live; {limit})")
    for what in budget.refused:
        write(f"  refused by the budget: {what}")
    _shape_report(write, config, target)


def _skipped_rules(terminalreporter) -> list[tuple[str, str]]:
    """(rule, short reason) of the skipped validation cases, for the report."""
    found = []
    for report in terminalreporter.stats.get("skipped", []):
        nodeid = getattr(report, "nodeid", "")
        if "test_validation.py::" not in nodeid or "[" not in nodeid:
            continue
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        why = "costly" if reason.startswith("costly") else ("budget" if reason.startswith("image budget") else reason[:60])
        found.append((nodeid.rsplit("[", 1)[1].rstrip("]"), why))
    return found


def _shape_report(write, config: pytest.Config, target: str) -> None:
    recorded = load_recordings(RECORDED_DIR)
    if target == "live":
        if config.getoption("--record"):
            write(f"recorded responses written to {RECORDED_DIR.relative_to(REPO)}/")
        return
    if not recorded:
        write(f"shape diff: no recordings in {RECORDED_DIR.relative_to(REPO)}/ "
              "(make some with: pytest contract_tests --target live --record)")
        return
    mock = config.stash[_shapes_key]
    lines = diff_sets(recorded, mock)
    write(f"shape diff, {RECORDED_DIR.relative_to(REPO)}/ vs this mock run: " + (f"{len(lines)} difference(s)" if lines else "no differences"))
    for line in lines:
        write("  " + line)
