"""Namespaces (issue 18 point 3, docs/namespaces.md): one mock shared by several test
processes, each seeing only its own requests, results, journal, faults and uploads."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from echo_endpoint import EchoEndpoint
from mock_server.core.namespaces import DEFAULT, namespace_of
from mock_server.emulator import FalMock
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings
from server_process import ServerProcess

APP = "test-owner/echo"
ENDPOINT_ID = "test-owner/echo/run"
REPO_ROOT = Path(__file__).resolve().parents[1]
BEARER = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"}  # names no key id


def key(namespace: str) -> dict[str, str]:
    return {"Authorization": f"Key {namespace}:secret"}


@pytest.fixture(scope="module", params=["fast lane", "web face"])
def server(request):
    """One shared mock, served with its fast lane and without (every call through the routes)."""
    mock = FalMock(Settings(profile="instant"), endpoints=[EchoEndpoint()])
    with BackgroundServer(mock, lane=request.param == "fast lane") as running:
        yield running


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
        client.post("/_mock/reset?namespace=*")


def submit(client: httpx.Client, headers: dict[str, str], body=None) -> str:
    answer = client.post(f"/queue/{ENDPOINT_ID}", json={"x": 1} if body is None else body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["request_id"]


# -- the rule ----------------------------------------------------------------------------------
@pytest.mark.parametrize("headers,expected", [
    ([], DEFAULT),
    ([(b"authorization", b"Key ci-job-17:secret")], "ci-job-17"),
    ([(b"authorization", b"key  ci-job-17:secret ")], "ci-job-17"),
    ([(b"authorization", b"Bearer eyJhbGciOi")], DEFAULT),  # a JWT names no key id
    ([(b"authorization", b"Key nocolon")], DEFAULT),
    ([(b"authorization", b"Key a:b"), (b"x-fal-mock-namespace", b"team-x")], "team-x"),  # chosen: header wins
    ([(b"x-fal-mock-namespace", b"team-x"), (b"authorization", b"Key a:b")], "team-x"),
    ([(b"x-fal-mock-namespace", b"  "), (b"authorization", b"Key a:b")], "a"),  # an empty header chooses nothing
    ([(b"x-fal-mock-namespace", b"n" * 500)], "n" * 128),
])
def test_the_namespace_rule(headers, expected):
    assert namespace_of(headers) == expected


# -- isolation over the wire -------------------------------------------------------------------
def test_a_request_id_from_another_namespace_is_a_404_for_every_call(http):
    rid = submit(http, key("alice"))
    base = f"/queue/{APP}/requests/{rid}"
    own, other = key("alice"), key("bob")
    assert http.get(base + "/status", headers=own).status_code == 200
    assert http.get(base, headers=own).status_code == 200
    assert http.get(base + "/status", headers=other).status_code == 404
    assert http.get(base, headers=other).status_code == 404
    assert http.get(base + "/status/stream", headers=other).status_code == 404
    assert http.put(base + "/cancel", headers=other).status_code == 404
    # the header chooses too, and wins over the key
    assert http.get(base + "/status", headers={**other, "x-fal-mock-namespace": "alice"}).status_code == 200
    assert http.get(base + "/status", headers={**own, "x-fal-mock-namespace": "bob"}).status_code == 404
    # no key id (a bearer token after `fal auth login`), no header: the default namespace
    assert http.get(base + "/status", headers=BEARER).status_code == 404
    # the cancel refused across namespaces left it alone
    assert http.put(base + "/cancel", headers=own).status_code == 400  # ALREADY_COMPLETED (instant)


def test_a_request_in_the_queue_cannot_be_cancelled_from_another_namespace(server, http):
    server.call(lambda: server.mock.configure(polls=5))  # stays queued until polled
    try:
        rid = submit(http, key("alice"))
        base = f"/queue/{APP}/requests/{rid}"
        assert http.put(base + "/cancel", headers=key("bob")).status_code == 404
        assert http.get(base + "/status", headers=key("alice")).json()["status"] == "IN_QUEUE"
        assert http.put(base + "/cancel", headers=key("alice")).status_code == 202
    finally:
        server.call(lambda: server.mock.configure(polls=None))


def test_namespaces_stay_apart_under_concurrency(server, http):
    """Threads with their own keys submit, poll, fetch results, list their journal, set and
    meet faults and reset, all at once: each sees only its own."""
    names = [f"job-{i}" for i in range(6)]
    per_thread = 8
    errors: list[str] = []
    barrier = threading.Barrier(len(names))
    own_ids: dict[str, list[str]] = {}

    def work(name: str) -> None:
        try:
            with httpx.Client(base_url=server.url, headers=key(name), timeout=20) as client:
                barrier.wait()
                ids = []
                for i in range(per_thread):
                    ids.append(submit(client, key(name), {"x": i, "who": name}))
                    client.get(f"/queue/{APP}/requests/{ids[-1]}/status")
                for rid in ids:
                    answer = client.get(f"/queue/{APP}/requests/{rid}")
                    if answer.status_code != 200 or answer.json()["echo"]["who"] != name:
                        errors.append(f"{name}: result of {rid}: {answer.status_code} {answer.text[:200]}")
                own_ids[name] = ids
                # a fault rule in this namespace only: the next submit here fails, nobody else's
                rule = client.post("/_mock/faults", params={"namespace": name},
                                   json={"on": "submit", "status": 503, "times": 1})
                assert rule.status_code == 201 and rule.json()["namespace"] == name
                failed = client.post(f"/queue/{ENDPOINT_ID}", json={"x": "fault"})
                if failed.status_code != 503:
                    errors.append(f"{name}: own fault did not fire: {failed.status_code}")
                even = names.index(name) % 2 == 0
                if even:  # status polls fail here for good; the odd namespaces' must not
                    client.post("/_mock/faults", params={"namespace": name},
                                json={"on": "status", "status": 500, "times": None})
                barrier.wait()  # every namespace has met its own fault
                polled = client.get(f"/queue/{APP}/requests/{ids[0]}/status").status_code
                if polled != (500 if even else 200):
                    errors.append(f"{name}: status poll answered {polled}")
                journal = client.get("/_mock/requests", params={"namespace": name, "body": "0"}).json()
                seen = {e["namespace"] for e in journal["requests"]}
                if seen != {name}:
                    errors.append(f"{name}: journal shows namespaces {seen}")
                submits = [e for e in journal["requests"] if e["kind"] == "submit" and e["status"] == 200]
                if sorted(e["request_id"] for e in submits) != sorted(ids):
                    errors.append(f"{name}: journal submits differ")
                listed = client.get("/_mock/queue", params={"namespace": name}).json()["requests"]
                if sorted(r["request_id"] for r in listed) != sorted(ids):
                    errors.append(f"{name}: queue listing differs")
                if client.get("/_mock/faults", params={"namespace": name}).json()["rules"][0]["fired"] != 1:
                    errors.append(f"{name}: rule did not count its one firing")
                barrier.wait()
                # half the namespaces reset themselves while the others look
                if names.index(name) % 2 == 0:
                    assert client.post("/_mock/reset", params={"namespace": name}).status_code == 200
                    if client.get(f"/queue/{APP}/requests/{ids[0]}/status").status_code != 404:
                        errors.append(f"{name}: own request survived own reset")
                barrier.wait()
                if names.index(name) % 2 == 1:
                    for rid in ids:
                        if client.get(f"/queue/{APP}/requests/{rid}/status").status_code != 200:
                            errors.append(f"{name}: {rid} lost to another namespace's reset")
                    if len(client.get("/_mock/requests", params={"namespace": name}).json()["requests"]) < 2 * per_thread:
                        errors.append(f"{name}: journal emptied by another namespace's reset")
        except Exception as exc:  # reported below, with the thread's name
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            barrier.abort()

    threads = [threading.Thread(target=work, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, "\n".join(errors)
    # read without ?namespace=: everything, from every namespace still there
    everything = http.get("/_mock/queue").json()["requests"]
    assert {r["namespace"] for r in everything} == {n for i, n in enumerate(names) if i % 2 == 1}


# -- the control API ---------------------------------------------------------------------------
def test_the_control_api_filters_by_namespace_and_scopes_actions(http):
    a = submit(http, key("alice"))
    b = submit(http, key("bob"))
    c = submit(http, BEARER)  # no key id: the default namespace
    assert {r["request_id"]: r["namespace"] for r in http.get("/_mock/queue").json()["requests"]} == {
        a: "alice", b: "bob", c: DEFAULT}
    assert [r["request_id"] for r in http.get("/_mock/queue?namespace=bob").json()["requests"]] == [b]
    assert http.get(f"/_mock/queue/{a}?namespace=bob").status_code == 404
    assert http.get(f"/_mock/queue/{a}?namespace=alice").json()["namespace"] == "alice"
    assert http.get(f"/_mock/queue/{a}").status_code == 200  # no namespace: every one
    journal = http.get("/_mock/requests?namespace=alice").json()["requests"]
    assert [e["request_id"] for e in journal] == [a]
    assert {n["namespace"] for n in http.get("/_mock/namespaces").json()["namespaces"]} == {"alice", "bob", DEFAULT}
    # faults: listed, removed and cleared per namespace
    ra = http.post("/_mock/faults?namespace=alice", json={"on": "status", "status": 500, "times": None}).json()
    rb = http.post("/_mock/faults?namespace=bob", json={"on": "status", "status": 502, "times": None}).json()
    assert [r["id"] for r in http.get("/_mock/faults?namespace=alice").json()["rules"]] == [ra["id"]]
    assert http.delete(f"/_mock/faults/{ra['id']}?namespace=bob").status_code == 404
    assert http.get(f"/queue/{APP}/requests/{a}/status", headers=key("alice")).status_code == 500
    assert http.get(f"/queue/{APP}/requests/{c}/status", headers=BEARER).status_code == 200  # no fault there
    assert http.delete("/_mock/faults?namespace=alice").status_code == 200
    assert [r["id"] for r in http.get("/_mock/faults").json()["rules"]] == [rb["id"]]
    # reset one namespace: the others keep everything
    assert http.post("/_mock/reset?namespace=bob").json() == {"status": "ok", "namespace": "bob"}
    left = {r["request_id"] for r in http.get("/_mock/queue").json()["requests"]}
    assert left == {a, c}
    assert http.get("/_mock/faults").json()["rules"] == []
    assert http.get("/_mock/requests?namespace=bob").json()["requests"] == []
    # the clock and the config are the server's: a namespace there is a clear 400
    for method, path in (("POST", "/_mock/clock"), ("POST", "/_mock/config")):
        refused = http.request(method, path + "?namespace=alice", json={})
        assert refused.status_code == 400 and "shared by every namespace" in refused.json()["detail"]
    # an empty namespace is a 400, never "every namespace"
    assert http.post("/_mock/reset?namespace=").status_code == 400
    assert {r["request_id"] for r in http.get("/_mock/queue").json()["requests"]} == {a, c}


ACTIONS = [("POST", "/_mock/reset", None), ("POST", "/_mock/faults", {"on": "submit", "status": 503}),
           ("DELETE", "/_mock/faults", None), ("DELETE", "/_mock/faults/rule-1", None)]


@pytest.mark.parametrize("method,path,body", ACTIONS)
def test_an_action_without_a_namespace_is_a_400_naming_both_ways(http, method, path, body):
    a = submit(http, key("alice"))
    http.post("/_mock/faults?namespace=alice", json={"on": "status", "status": 500, "times": None})
    refused = http.request(method, path, json=body)
    assert refused.status_code == 400
    assert refused.json() == {"detail": refused.json()["detail"], "error_type": "bad_request"}
    detail = refused.json()["detail"]
    assert "?namespace=NAME" in detail and "?namespace=*" in detail and "GET /_mock/namespaces" in detail
    # nothing changed
    assert [r["request_id"] for r in http.get("/_mock/queue").json()["requests"]] == [a]
    assert len(http.get("/_mock/faults").json()["rules"]) == 1


def test_star_acts_on_every_namespace(http):
    a = submit(http, key("alice"))
    b = submit(http, key("bob"))
    # reads: * is every namespace, as no parameter is
    assert {r["request_id"] for r in http.get("/_mock/queue?namespace=*").json()["requests"]} == {a, b}
    assert http.get(f"/_mock/queue/{a}?namespace=*").status_code == 200
    assert {e["namespace"] for e in http.get("/_mock/requests?namespace=*").json()["requests"]} == {"alice", "bob"}
    # a rule added with * fires on every namespace's calls
    rule = http.post("/_mock/faults?namespace=*", json={"on": "status", "status": 500, "times": None}).json()
    assert rule["namespace"] is None
    own = http.post("/_mock/faults?namespace=alice", json={"on": "result", "status": 502, "times": None}).json()
    for rid, who in ((a, "alice"), (b, "bob")):
        assert http.get(f"/queue/{APP}/requests/{rid}/status", headers=key(who)).status_code == 500
    assert http.get(f"/queue/{APP}/requests/{b}", headers=key("bob")).status_code == 200  # alice's rule only
    assert {r["id"] for r in http.get("/_mock/faults?namespace=*").json()["rules"]} == {rule["id"], own["id"]}
    # a namespace removes only its own rules; * removes whoever's
    assert http.delete(f"/_mock/faults/{rule['id']}?namespace=alice").status_code == 404
    assert http.delete(f"/_mock/faults/{own['id']}?namespace=*").json() == {"removed": own["id"]}
    assert http.delete("/_mock/faults?namespace=*").json() == {"rules": []}
    assert http.get("/_mock/faults").json()["rules"] == []
    # the clock and the config take * (their reach), as they take no parameter
    assert http.post("/_mock/clock?namespace=*", json={"freeze": True}).json()["frozen"] is True
    assert http.get("/_mock/config").json() == http.post("/_mock/config?namespace=*", json={}).json()
    # reset with *: every namespace's requests, and the clock back to real time
    assert http.post("/_mock/reset?namespace=*").json() == {"status": "ok", "namespace": "*"}
    assert http.get("/_mock/queue").json()["requests"] == []
    assert http.get("/_mock/namespaces").json()["namespaces"] == []
    assert http.get("/_mock/clock").json()["frozen"] is False


def test_a_named_action_acts_on_that_namespace_only(http):
    a = submit(http, key("alice"))
    b = submit(http, key("bob"))
    http.post("/_mock/faults?namespace=bob", json={"on": "status", "status": 500, "times": None})
    http.post("/_mock/clock?namespace=*", json={"freeze": True})
    assert http.post("/_mock/reset?namespace=alice").json() == {"status": "ok", "namespace": "alice"}
    assert [r["request_id"] for r in http.get("/_mock/queue").json()["requests"]] == [b]
    assert [r["namespace"] for r in http.get("/_mock/faults").json()["rules"]] == ["bob"]
    assert http.get("/_mock/clock").json()["frozen"] is True, "the clock is the server's: a namespace's reset leaves it"
    assert http.get(f"/queue/{APP}/requests/{a}/status", headers=key("alice")).status_code == 404


def test_the_dashboard_list_filters_by_namespace(http):
    a = submit(http, key("alice"))
    b = submit(http, key("bob"))
    page = http.get("/_mock/ui/rows?namespace=alice")
    assert a in page.text and b not in page.text
    assert page.headers["x-dashboard-total"] == "1"
    assert http.get("/_mock/ui/rows").headers["x-dashboard-total"] == "2"
    # the live feed says each row's namespace, so a filtered page adds only its own
    with http.stream("GET", "/_mock/ui/events") as events:
        lines = events.iter_lines()
        next(line for line in lines if line.startswith("data:"))  # hello: subscribed
        fresh = submit(http, key("carol"))
        row = next(line for line in lines if line.startswith("data:") and fresh in line)
        assert '"namespace":"carol"' in row.replace(" ", "")


def test_uploads_belong_to_the_uploader_s_namespace(http):
    """Both upload paths the clients use: the CDN (a token issued to the key) and the signed PUT."""
    def cdn_upload(namespace: str) -> str:
        token = http.post("/_mock/rest/storage/auth/token?storage_type=fal-cdn-v3", json={},
                          headers=key(namespace)).json()["token"]
        answer = http.post("/_mock/cdn/files/upload", content=b"\x89PNG-" + namespace.encode(),
                           headers={"Authorization": f"Bearer {token}", "content-type": "image/png"})
        assert answer.status_code == 200, answer.text
        return answer.json()["access_url"]

    def signed_upload(namespace: str) -> str:
        started = http.post("/_mock/rest/storage/upload/initiate", headers=key(namespace),
                            json={"content_type": "image/png", "file_name": "a.png"}).json()
        assert http.put(started["upload_url"], content=b"png", headers={"content-type": "image/png"}).status_code == 200
        return started["file_url"]

    alice = [cdn_upload("alice"), signed_upload("alice")]
    bob = [cdn_upload("bob"), signed_upload("bob")]
    for url in alice + bob:
        assert http.get(url).status_code == 200  # stored file URLs are public, as fal's CDN's
    cdn_calls = http.get("/_mock/requests?namespace=alice&path=/files/upload").json()["requests"]
    assert len(cdn_calls) == 1  # the CDN call, filed under its token's namespace
    assert http.post("/_mock/reset?namespace=alice").status_code == 200
    assert [http.get(url).status_code for url in alice + bob] == [404, 404, 200, 200]


def test_a_namespace_reset_forgets_its_uploads_only():
    mock = FalMock(Settings(profile="instant"), endpoints=[EchoEndpoint()])
    mock.files.claim("a.png", "alice")
    mock.files.add_upload("a.png", b"a", "image/png")
    mock.files.claim("b.png", "bob")
    mock.files.add_upload("b.png", b"b", "image/png")
    mock.files.add_upload("c.png", b"c", "image/png")  # no owner known: the default namespace's
    mock.reset_namespace("alice")
    assert "a.png" not in mock.files and "b.png" in mock.files and "c.png" in mock.files


# -- persistence -------------------------------------------------------------------------------
def test_namespaces_survive_a_restart(tmp_path: Path):
    def serve():
        return BackgroundServer(FalMock(Settings(profile="instant", persist=True, state_dir=tmp_path),
                                        endpoints=[EchoEndpoint()]))

    with serve() as first, httpx.Client(base_url=first.url, timeout=10) as client:
        a = submit(client, key("alice"))
        first.mock.persistence.wait_written()
        first.mock.close()
    with serve() as second, httpx.Client(base_url=second.url, timeout=10) as client:
        assert client.get(f"/queue/{APP}/requests/{a}/status", headers=key("alice")).status_code == 200
        assert client.get(f"/queue/{APP}/requests/{a}/status", headers=key("bob")).status_code == 404
        assert client.get(f"/_mock/queue/{a}").json()["namespace"] == "alice"
        second.mock.close()


def test_a_state_folder_from_before_namespaces_is_migrated(tmp_path: Path):
    mock = FalMock(Settings(profile="instant", persist=True, state_dir=tmp_path), endpoints=[EchoEndpoint()])
    endpoint = mock.endpoint(ENDPOINT_ID)
    rid = mock.queue.submit(endpoint, endpoint.parse(b'{"x": 1}')).request_id
    mock.persistence.wait_written()
    mock.close()
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:  # the schema version 1 wrote
        db.execute("ALTER TABLE requests DROP COLUMN namespace")
        db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    again = FalMock(Settings(profile="instant", persist=True, state_dir=tmp_path), endpoints=[EchoEndpoint()])
    try:
        found = again.queue.get(rid)
        assert found is not None and found.namespace == DEFAULT
    finally:
        again.close()
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == "2"
        assert db.execute("SELECT namespace FROM requests").fetchall() == [(DEFAULT,)]


# -- the pytest plugin against a shared server ---------------------------------------------------
_PLUGIN_TEST = '''
import os
import fal_client

def test_sees_only_its_own_calls(fal_mock):
    assert fal_mock.namespace.startswith("pytest-")
    assert fal_mock.key == fal_mock.namespace + ":secret"
    ids = []
    for i in range(COUNT):
        handle = fal_client.submit("fal-ai/wan-25-preview/image-to-image",
                                   {"prompt": f"p{i}", "image_urls": ["https://example.com/a.png"]})
        ids.append(handle.request_id)
        handle.get()
    submits = fal_mock.requests(kind="submit")
    assert sorted(e.request_id for e in submits) == sorted(ids)
    assert all(e.json["prompt"].startswith("p") for e in submits)
    assert fal_mock.status_of(ids[0]) == "COMPLETED"
    fal_mock.fail_next("submit", status=503, request_id_header=True)
    try:
        fal_client.submit("fal-ai/wan-25-preview/image-to-image",
                          {"prompt": "x", "image_urls": ["https://example.com/a.png"]})
    except Exception as exc:
        assert "503" in str(exc) or "Runner" in str(exc), exc
    else:
        raise AssertionError("the namespace's fault did not fire")
    with open(os.environ["IDS_OUT"], "w") as out:
        out.write("\\n".join(ids))
'''


def test_the_fixture_uses_its_own_namespace_on_a_shared_server(tmp_path: Path):
    with ServerProcess(["--profile", "instant"]) as shared:
        runs = []
        for i, count in enumerate((3, 5)):
            folder = tmp_path / f"run{i}"
            folder.mkdir()
            (folder / "test_shared.py").write_text(_PLUGIN_TEST.replace("COUNT", str(count)))
            env = {**os.environ, "FAL_MOCK_URL": shared.url, "IDS_OUT": str(folder / "ids.txt"),
                   "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
            env.pop("FAL_MOCK_NAMESPACE", None)
            runs.append(subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "test_shared.py")], cwd=folder, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True))
        outputs = [run.communicate(timeout=120)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], "\n".join(outputs)
        with httpx.Client(base_url=shared.url, timeout=10) as client:
            listed = client.get("/_mock/queue").json()["requests"]
            spaces = client.get("/_mock/namespaces").json()["namespaces"]
    # both processes' requests are on the server, each in a namespace of its own
    ids = [set((tmp_path / f"run{i}" / "ids.txt").read_text().split()) for i in range(2)]
    by_namespace: dict[str, set[str]] = {}
    for item in listed:
        by_namespace.setdefault(item["namespace"], set()).add(item["request_id"])
    assert sorted(by_namespace.values(), key=len) == ids
    assert len([s for s in spaces if s["namespace"].startswith("pytest-")]) == 2
    assert json.dumps(spaces)  # listed as JSON-able rows


def test_the_fixture_refuses_every_namespace_as_its_own(monkeypatch) -> None:
    """FAL_MOCK_NAMESPACE=* would make the shared-server fixture reset everyone's state."""
    from mock_server.pytest_plugin import RemoteServer

    monkeypatch.setenv("FAL_MOCK_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("FAL_MOCK_NAMESPACE", "*")
    with pytest.raises(pytest.UsageError, match="every namespace"):
        RemoteServer.from_environment()
    monkeypatch.setenv("FAL_MOCK_NAMESPACE", "ci-job-17")
    assert RemoteServer.from_environment().namespace == "ci-job-17"


def test_a_namespace_reset_deletes_its_uploads_from_the_state_folder_too(tmp_path) -> None:
    """With --state-dir an upload is also on disk: a namespace's reset must delete it there,
    or the file store reads it back at the next GET (and after a restart)."""
    from mock_server.emulator import FalMock
    from mock_server.settings import Settings

    settings = Settings(persist=True, state_dir=tmp_path)
    mock = FalMock(settings)
    try:
        for name, namespace in (("alice.png", "alice"), ("bob.png", "bob")):
            mock.files.add_upload(name, b"\x89PNG" + name.encode(), "image/png")
            mock.files.claim(name, namespace)
        mock.persistence.flush()
        assert mock.persistence.wait_written()
        mock.reset_namespace("alice")
        mock.persistence.flush()
        assert mock.persistence.wait_written()
        assert mock.files.get("alice.png") is None and mock.files.get("bob.png") is not None
    finally:
        mock.close()
    restarted = FalMock(settings)
    try:
        assert restarted.files.get("alice.png") is None
        assert restarted.files.get("bob.png").data == b"\x89PNGbob.png"
    finally:
        restarted.close()
