"""Record and replay (issue 19) end to end, offline: the upstream is a second fal-mock.

Record through server A (``--record DIR --upstream U``) with both official clients, stop the
upstream, replay with a new server from DIR, and compare what the clients see; scrubbing,
strict and fallback modes, uploads, and a re-record that changes no file.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from server_process import ServerProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
APP = "fal-ai/wan-25-preview/image-to-image"
KEY = "rec0rdid:very-secret-upstream-key-42"
def _png() -> bytes:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (512, 512), (200, 40, 90)).save(out, "PNG")
    return out.getvalue()


PNG = _png()

PY_CLIENT = r'''
import json, os, sys, base64
import fal_client, fal_client.client as c
url = os.environ["RR_URL"]
c.RUN_URL_FORMAT = url + "/"; c.QUEUE_URL_FORMAT = url + "/queue/"
c.REST_URL = url + "/_mock/rest"; c.CDN_URL = url + "/_mock/cdn"
args = json.loads(os.environ["RR_INPUT"])
if os.environ.get("RR_UPLOAD"):
    args["image_urls"] = [fal_client.upload(base64.b64decode(os.environ["RR_UPLOAD"]), "image/png")]
updates = []
def on(u):
    updates.append({"type": type(u).__name__, "logs": [l["message"] for l in (getattr(u, "logs", None) or [])]})
try:
    handle = fal_client.submit("fal-ai/wan-25-preview/image-to-image", args)
    for event in handle.iter_events(with_logs=True, interval=0.02):
        on(event)
    out = {"result": handle.get(), "updates": updates}
except fal_client.client.FalClientHTTPError as exc:
    out = {"error": str(exc), "status": exc.status_code}
print(json.dumps(out))
'''


def py_client(url: str, args: dict, upload: bytes | None = None, key: str = KEY) -> dict:
    env = {**os.environ, "RR_URL": url, "RR_INPUT": json.dumps(args), "FAL_KEY": key,
           "RR_UPLOAD": base64.b64encode(upload).decode() if upload else ""}
    done = subprocess.run([sys.executable, "-c", PY_CLIENT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def js_client(url: str, args: dict) -> dict:
    env = {**os.environ, "FAL_MOCK_PROXY_URL": url + "/api/fal/proxy", "RR_INPUT": json.dumps(args), "FAL_KEY": KEY}
    done = subprocess.run([shutil.which("node") or "node", str(REPO_ROOT / "tests/js/record_replay_client.mjs")],
                          env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT / "tests/js")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def without_urls(value):
    if isinstance(value, dict):
        return {k: without_urls(v) for k, v in value.items() if k not in ("url", "file_name")}
    if isinstance(value, list):
        return [without_urls(v) for v in value]
    return value


PY_ARGS = {"prompt": "a lighthouse in a storm", "seed": 7, "num_images": 2}
# a credential-named field travels upstream as given and reaches the cassette scrubbed
JS_ARGS = {"prompt": "a cat on a roof", "image_urls": ["https://example.com/a.png"], "seed": 8,
           "webhook_secret": KEY}


def record_all(folder: Path) -> dict:
    """Record the Python flow (with an upload) and the JS flow through a recording server whose
    upstream is a fal-mock in poll-count mode (IN_QUEUE, IN_PROGRESS, COMPLETED on every run)."""
    seen: dict = {}
    with ServerProcess(["--polls", "3"]) as upstream, \
            ServerProcess(["--profile", "instant", "--record", str(folder), "--upstream", upstream.url],
                          env={"FAL_KEY": KEY, "PYTHONPATH": str(REPO_ROOT)}) as recorder:
        seen["py"] = py_client(recorder.url, PY_ARGS, upload=PNG)
        seen["js"] = js_client(recorder.url, JS_ARGS)
        # the media the client was answered, while the upstream still serves them
        seen["py_media"] = [httpx.get(image["url"]).content for image in seen["py"]["result"]["images"]]
        seen["js_media"] = [httpx.get(image["url"]).content for image in seen["js"]["data"]["images"]]
    return seen


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("cassettes")
    return folder, record_all(folder)


def test_recording_answers_the_clients_with_what_the_upstream_answered(recorded):
    folder, seen = recorded
    assert len(seen["py"]["result"]["images"]) == 2 and seen["py"]["result"]["seeds"] == [7, 8]
    assert all(m.startswith(b"\x89PNG") for m in seen["py_media"] + seen["js_media"])
    assert seen["js"]["data"]["seeds"] == [8]


def test_cassettes_are_one_file_per_request_with_media_beside_and_uploads(recorded):
    folder, seen = recorded
    cassettes = sorted((folder / APP).glob("*.json"))
    assert len(cassettes) == 2
    py = next(json.loads(p.read_text()) for p in cassettes if json.loads(p.read_text())["input"]["seed"] == 7)
    assert [s["status"] for s in py["states"]] == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert py["logs"] and py["result"]["status"] == 200
    assert py["result"]["headers"]["x-fal-billable-units"]
    # the uploaded input: kept by content, named so in the input, with its bytes
    (digest,) = py["uploads"]
    assert py["input"]["image_urls"] == [f"fal-mock-upload:sha256:{digest}"]
    upload_meta = json.loads((folder / "_uploads" / f"{digest[:16]}.json").read_text())
    assert (folder / "_uploads" / upload_meta["file"]).read_bytes() == PNG
    assert upload_meta["upstream_url"].startswith("http")
    media = [(folder / APP / m["file"]).read_bytes() for m in py["media"]]
    assert media == seen["py_media"]


def test_no_key_reaches_the_cassettes(recorded):
    folder, _ = recorded
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in (KEY, KEY.split(":")[1], "Key rec0rdid"):
                assert secret.encode() not in data, f"{secret!r} in {path}"


def test_replay_plays_the_recorded_lifecycle_result_and_media(recorded):
    folder, seen = recorded
    with ServerProcess(["--profile", "default", "--speed", "10", "--replay", str(folder), "--replay-strict"]) as replay:
        py = py_client(replay.url, PY_ARGS, upload=PNG)
        js = js_client(replay.url, JS_ARGS)
        assert without_urls(py["result"]) == without_urls(seen["py"]["result"])
        assert [httpx.get(i["url"]).content for i in py["result"]["images"]] == seen["py_media"]
        assert all(i["url"].startswith(replay.url + "/_mock/files/replay-") for i in py["result"]["images"])
        kinds = [u["type"] for u in py["updates"]]
        assert kinds[0] == "Queued" and "InProgress" in kinds and kinds[-1] == "Completed"
        recorded_logs = [line["message"] for line in json.loads(
            next(p for p in (folder / APP).glob("*.json") if json.loads(p.read_text())["input"]["seed"] == 7)
            .read_text())["logs"]]
        assert py["updates"][-1]["logs"] == recorded_logs
        assert without_urls(js["data"]) == without_urls(seen["js"]["data"])
        assert [httpx.get(i["url"]).content for i in js["data"]["images"]] == seen["js_media"]
        assert [u["status"] for u in js["updates"]][-1] == "COMPLETED"


def test_strict_replay_names_the_closest_recordings(recorded):
    folder, _ = recorded
    with ServerProcess(["--profile", "instant", "--replay", str(folder), "--replay-strict"]) as replay:
        missed = py_client(replay.url, {**JS_ARGS, "seed": 9})
        assert missed["status"] == 400
        assert "no recording of fal-ai/wan-25-preview/image-to-image" in missed["error"]
        assert "differs in: seed" in missed["error"]


def test_replay_ignore_and_fallback_to_the_emulator(recorded):
    folder, seen = recorded
    with ServerProcess(["--profile", "instant", "--replay", str(folder), "--replay-ignore", "seed"]) as replay:
        ignored = py_client(replay.url, {**JS_ARGS, "seed": 9})
        assert without_urls(ignored["result"]) == without_urls(seen["js"]["data"])  # the seed-8 recording
        emulated = py_client(replay.url, {**JS_ARGS, "prompt": "never recorded"})
        assert emulated["result"]["actual_prompt"] == "never recorded"  # the emulator's answer
        assert "/_mock/files/replay-" not in emulated["result"]["images"][0]["url"]


def test_recording_uses_the_callers_own_key_and_without_one_says_what_is_missing(tmp_path):
    env = {"FAL_KEY": None, "PYTHONPATH": str(REPO_ROOT)}
    with ServerProcess(["--profile", "instant", "--keys", KEY]) as upstream, \
            ServerProcess(["--profile", "instant", "--record", str(tmp_path), "--upstream", upstream.url],
                          env=env) as recorder:
        assert py_client(recorder.url, JS_ARGS)["result"]["seeds"] == [8]  # the upstream took the caller's key
        missing = py_client(recorder.url, {**JS_ARGS, "seed": 1}, key="fal-mock:secret")
    assert missing["status"] == 401 and "no key for the upstream" in missing["error"]
    assert len(list((tmp_path / APP).glob("*.json"))) == 1
    assert not any(KEY.split(":")[1].encode() in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


def test_a_re_record_of_the_same_calls_changes_no_file(recorded, tmp_path):
    folder, _ = recorded
    copy = tmp_path / "again"
    shutil.copytree(folder, copy)
    before = snapshot(copy)
    record_all(copy)
    assert snapshot(copy) == before


# -- the pytest plugin: @pytest.mark.fal_mock(replay=...) and --fal-record -------------------------
INNER_TEST = """
import fal_client, pytest

@pytest.mark.fal_mock(replay="cassettes")
def test_recorded(fal_mock):
    result = fal_client.subscribe("fal-ai/wan-25-preview/image-to-image", %r)
    assert result["seeds"] == [8]
    assert "/_mock/files/replay-" in result["images"][0]["url"]
"""


def test_the_replay_marker_answers_from_cassettes_and_a_miss_fails_clearly(recorded, pytester, monkeypatch):
    folder, _ = recorded
    shutil.copytree(folder, pytester.path / "cassettes")
    pytester.makepyfile(test_hit=INNER_TEST % (JS_ARGS,))
    pytester.makepyfile(test_miss=INNER_TEST % ({**JS_ARGS, "seed": 99},))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*no recording of fal-ai/wan-25-preview/image-to-image*", "*differs in: seed*"])


def test_fal_record_without_a_key_fails_with_a_clear_message(pytester, monkeypatch):
    monkeypatch.delenv("FAL_KEY", raising=False)
    pytester.makepyfile(INNER_TEST % (JS_ARGS,))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--fal-record")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--fal-record records through the real fal API and needs your key*"])


def test_fal_record_records_the_missing_cassettes_then_they_replay(pytester, monkeypatch):
    monkeypatch.setenv("FAL_KEY", KEY)
    pytester.makepyfile(INNER_TEST.replace('assert "/_mock/files/replay-" in', 'assert "/_mock/files/" in') % (JS_ARGS,))
    with ServerProcess(["--profile", "instant"]) as upstream:
        recording = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--fal-record",
                                                 "--fal-upstream", upstream.url)
        recording.assert_outcomes(passed=1)  # the upstream answered it
        assert len(list((pytester.path / "cassettes" / APP).glob("*.json"))) == 1
    pytester.makepyfile(INNER_TEST % (JS_ARGS,))
    replaying = pytester.runpytest_inprocess("-p", "no:cacheprovider")  # the upstream is gone
    replaying.assert_outcomes(passed=1)
