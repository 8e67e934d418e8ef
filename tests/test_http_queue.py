"""The fal queue/run wire format, over real HTTP, with a model-less endpoint."""
from __future__ import annotations

import threading

import httpx
import pytest

from echo_endpoint import EchoEndpoint
from mock_server.server.background import BackgroundServer
from mock_server.emulator import FalMock
from mock_server.settings import Settings

KEY = {"Authorization": "Key test-id:test-secret"}
APP = "test-owner/echo"
ENDPOINT_ID = "test-owner/echo/run"


@pytest.fixture
def serve():
    """Start a mock with the echo endpoint; yields a factory taking Settings overrides."""
    servers: list[BackgroundServer] = []

    def start(**settings) -> tuple[BackgroundServer, httpx.Client]:
        mock = FalMock(Settings(**{"profile": "instant", **settings}), endpoints=[EchoEndpoint()])
        server = BackgroundServer(mock).start()
        servers.append(server)
        return server, httpx.Client(base_url=server.url, headers=KEY, timeout=10)

    yield start
    for server in servers:
        server.stop()


def submit(client: httpx.Client, body=None, **kw) -> dict:
    response = client.post(f"/queue/{ENDPOINT_ID}", json={"x": 1} if body is None else body, **kw)
    assert response.status_code == 200, response.text
    return response.json()


def test_submit_returns_fal_keys_and_urls_that_lead_back_to_the_mock(serve):
    server, client = serve()
    body = submit(client)
    rid = body["request_id"]
    # issue 17 point 5 (four recorded submits): "logs": null, "metrics": {} before queue_position
    assert list(body) == ["status", "request_id", "response_url", "status_url", "cancel_url", "logs", "metrics",
                          "queue_position"]
    assert body["status"] == "IN_QUEUE" and body["queue_position"] == 0
    assert body["logs"] is None and body["metrics"] == {}
    base = f"{server.url}/queue/{APP}/requests/{rid}"
    assert (body["response_url"], body["status_url"], body["cancel_url"]) == (base, base + "/status", base + "/cancel")
    assert client.get(body["status_url"]).json()["request_id"] == rid
    assert client.get(body["response_url"]).json() == {"echo": {"x": 1}, "request_id": rid}


def test_status_is_202_until_completed_then_200_with_metrics(serve):
    server, client = serve(profile="default", workers=1)
    server.mock.clock.freeze()
    body = submit(client)
    queued = client.get(body["status_url"])
    assert queued.status_code == 202
    assert queued.json()["status"] == "IN_QUEUE" and queued.json()["queue_position"] == 0
    assert list(queued.json())[-3:] == ["logs", "metrics", "queue_position"]  # issue 17 point 5
    assert queued.json()["logs"] is None and queued.json()["metrics"] == {}
    server.mock.clock.advance(0.5)
    running = client.get(body["status_url"], params={"logs": "1"})
    assert running.status_code == 202
    assert running.json()["status"] == "IN_PROGRESS" and running.json()["metrics"] == {}
    assert [line["message"] for line in running.json()["logs"]] == ["step 1"]
    server.mock.clock.advance(10)
    done = client.get(body["status_url"])
    assert done.status_code == 200
    assert done.json()["status"] == "COMPLETED" and done.json()["logs"] is None
    assert done.json()["metrics"]["inference_time"] > 0
    assert done.headers["x-fal-request-id"] == body["request_id"]


@pytest.mark.parametrize("value,expect_list", [("1", True), ("true", True), ("0", False), ("false", False)])
def test_logs_query_accepts_1_0_true_false(serve, value, expect_list):
    _, client = serve()
    body = submit(client)
    logs = client.get(body["status_url"], params={"logs": value}).json()["logs"]
    assert isinstance(logs, list) if expect_list else logs is None
    if expect_list:
        assert set(logs[0]) == {"timestamp", "message", "labels"}  # fal's recorded stream capture


def test_status_accepts_a_trailing_slash_but_not_the_full_endpoint_path(serve):
    _, client = serve()
    rid = submit(client)["request_id"]
    assert client.get(f"/queue/{APP}/requests/{rid}/status/").status_code == 200
    # issue 17 point 1: fal answers 405 on the full endpoint path (the owner/alias form only)
    assert client.get(f"/queue/{ENDPOINT_ID}/requests/{rid}/status").status_code == 405
    assert client.get(f"/queue/{ENDPOINT_ID}/requests/{rid}").status_code == 405


def test_queue_host_is_also_told_apart_by_a_queue_dot_host_header(serve):
    server, client = serve()
    response = client.post(f"/{ENDPOINT_ID}", json={"x": 2}, headers={"Host": f"queue.localhost:{server.port}"})
    assert response.json()["status"] == "IN_QUEUE"
    assert response.json()["status_url"].startswith(f"http://queue.localhost:{server.port}/{APP}/requests/")


def test_unknown_request_ids_get_fals_404_bodies(serve):
    _, client = serve()
    assert client.get(f"/queue/{APP}/requests/nope/status").json() == {"status": "NOT_FOUND"}
    result = client.get(f"/queue/{APP}/requests/nope")
    assert (result.status_code, result.json()) == (404, {"detail": "Request not found"})
    cancel = client.put(f"/queue/{APP}/requests/nope/cancel")
    assert (cancel.status_code, cancel.json()) == (404, {"status": "NOT_FOUND"})


def test_result_before_completion_is_400_still_in_progress(serve):
    server, client = serve(profile="default")
    server.mock.clock.freeze()
    body = submit(client)
    response = client.get(body["response_url"])
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Request is still in progress",
        "request_id": body["request_id"],
        "response_url": body["response_url"],
        "status_url": body["status_url"],
        "cancel_url": body["cancel_url"],
    }


def test_cancel_of_queued_request_succeeds_and_its_result_is_499(serve):
    server, client = serve(profile="default")
    server.mock.clock.freeze()
    body = submit(client)
    cancel = client.put(body["cancel_url"])
    assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    assert client.get(body["status_url"]).json()["status"] == "COMPLETED"
    result = client.get(body["response_url"])
    assert (result.status_code, result.json()) == (499, {"detail": "Request cancelled by the client."})


def test_cancel_of_completed_request_is_refused(serve):
    _, client = serve()
    body = submit(client)
    client.get(body["status_url"])
    cancel = client.put(body["cancel_url"])
    assert cancel.status_code == 400 and cancel.json()["status"] == "ALREADY_COMPLETED"


def test_bad_input_on_the_queue_is_accepted_then_the_result_answers_422(serve):
    _, client = serve()
    response = client.post(f"/queue/{ENDPOINT_ID}", content=b'{"prompt": ', headers={"content-type": "application/json"})
    assert response.status_code == 200
    body = response.json()
    assert client.get(body["status_url"]).json()["status"] == "COMPLETED"
    result = client.get(body["response_url"])
    assert result.status_code == 422 and result.headers["x-fal-billable-units"] == "0"


def test_run_host_answers_the_result_directly(serve):
    _, client = serve()
    ok = client.post(f"/{ENDPOINT_ID}", json={"y": 2})
    assert ok.status_code == 200 and ok.json()["echo"] == {"y": 2}
    assert ok.json()["request_id"] == ok.headers["x-fal-request-id"]
    bad = client.post(f"/{ENDPOINT_ID}", json={"bad": True})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body"]


def test_run_waits_its_processing_time_on_the_mock_clock(serve):
    server, client = serve(profile="default")
    server.mock.clock.freeze()
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(r=client.post(f"/{ENDPOINT_ID}", json={"z": 1})))
    thread.start()
    thread.join(0.3)
    assert thread.is_alive(), "a run on a frozen clock must wait"
    server.mock.clock.advance(10)
    thread.join(5)
    assert result["r"].status_code == 200


@pytest.mark.parametrize("headers,message", [
    ({}, "Missing authorization header"),
    ({"Authorization": "Key no-colon"}, "Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'."),
    ({"Authorization": "Basic a:b"}, "Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'."),
])
def test_auth_is_required_by_default(serve, headers, message):
    server, _ = serve()
    response = httpx.post(f"{server.url}/queue/{ENDPOINT_ID}", json={}, headers=headers)
    assert (response.status_code, response.json()) == (401, {"detail": message})


def test_keys_restricts_to_a_list_and_no_auth_turns_it_off(serve):
    server, _ = serve(keys=("good:key",))
    url = f"{server.url}/queue/{ENDPOINT_ID}"
    assert httpx.post(url, json={}, headers={"Authorization": "Key good:key"}).status_code == 200
    bad = httpx.post(url, json={}, headers={"Authorization": "Key other:key"})
    assert (bad.status_code, bad.json()) == (401, {"detail": "No user found for Key ID and Secret"})
    open_server, _ = serve(auth=False)
    assert httpx.post(f"{open_server.url}/queue/{ENDPOINT_ID}", json={}).status_code == 200


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/queue/test-owner/echo/run", 405),
    ("POST", "/queue/nobody/nothing", 404),
    ("GET", "/nothing/here", 404),
    ("DELETE", "/queue/test-owner/echo/requests/x/status", 405),
    ("GET", "/queue/test-owner/echo/requests/x/whatever", 404),
    ("GET", "/queue/other/app/requests/x/status", 404),
])
def test_unknown_paths_and_wrong_methods_get_json_errors(serve, method, path, status):
    _, client = serve()
    response = client.request(method, path)
    assert response.status_code == status
    assert isinstance(response.json()["detail"], str)


def test_a_request_id_is_not_found_under_another_app(serve):
    server, client = serve()
    server.mock.add_endpoint(type("Other", (EchoEndpoint,), {"endpoint_id": "other-owner/app"})())
    rid = submit(client)["request_id"]
    assert client.get(f"/queue/other-owner/app/requests/{rid}/status").status_code == 404


def test_an_oversized_body_gets_413_and_the_server_keeps_serving(serve):
    _, client = serve(max_body_bytes=1000)
    response = client.post(f"/queue/{ENDPOINT_ID}", content=b"x" * 5000)
    assert response.status_code == 413 and response.headers["x-fal-error-type"] == "bad_request"
    assert submit(client)["status"] == "IN_QUEUE"


def test_status_stream_emits_each_change_and_closes_after_completed(serve):
    server, client = serve(profile="default", workers=1)
    server.mock.clock.freeze()
    body = submit(client, {"note": "hello"})
    events = []
    with client.stream("GET", body["status_url"] + "/stream", params={"logs": "1"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                import json

                event = json.loads(line[6:])
                events.append(event)
                if len(events) == 1:
                    server.mock.clock.advance(30)  # from another thread: wakes the stream
    statuses = [e["status"] for e in events]
    assert statuses[0] == "IN_QUEUE" and statuses[-1] == "COMPLETED"
    logs = [line["message"] for e in events for line in (e.get("logs") or [])]
    assert logs == ["note: hello", "step 1", "step 2", "step 3"], "each log line is sent exactly once"


def test_proxy_routes_by_x_fal_target_url(serve):
    server, _ = serve()
    proxy = f"{server.url}/api/fal/proxy"
    submitted = httpx.post(proxy, json={"x": 3}, headers={"x-fal-target-url": f"https://queue.fal.run/{ENDPOINT_ID}"})
    assert submitted.status_code == 200, "a proxied call without Authorization is let through"
    rid = submitted.json()["request_id"]
    status = httpx.get(proxy, headers={"x-fal-target-url": f"https://queue.fal.run/{APP}/requests/{rid}/status?logs=1"})
    assert status.json()["status"] == "COMPLETED" and isinstance(status.json()["logs"], list)
    run = httpx.post(proxy, json={"x": 4}, headers={"x-fal-target-url": f"https://fal.run/{ENDPOINT_ID}"})
    assert run.json()["echo"] == {"x": 4}
    assert httpx.get(proxy).status_code == 400
    assert httpx.get(proxy, headers={"x-fal-target-url": "https://evil.example/x"}).status_code == 412
    denied = httpx.post(proxy, json={}, headers={"x-fal-target-url": f"https://fal.run/{ENDPOINT_ID}", "Authorization": "Key bad"})
    assert denied.status_code == 401


def test_health_queue_listing_and_reset(serve):
    _, client = serve()
    assert client.get("/_mock/health").json()["status"] == "ok"
    rid = submit(client)["request_id"]
    listed = client.get("/_mock/queue").json()["requests"]
    assert [r["request_id"] for r in listed] == [rid] and listed[0]["status"] == "COMPLETED"
    assert client.get(f"/_mock/queue/{rid}").json()["endpoint_id"] == ENDPOINT_ID
    assert client.get("/_mock/queue/unknown").status_code == 404
    assert client.post("/_mock/reset?namespace=*").status_code == 200
    assert client.get("/_mock/queue").json()["requests"] == []


def test_control_calls_from_another_sites_page_are_refused(serve):
    server, client = serve()
    evil = client.post("/_mock/reset", headers={"Origin": "https://evil.example"})
    assert (evil.status_code, evil.json()) == (403, {"detail": "Cross-site requests to the control API are refused"})
    assert client.post("/_mock/clock", json={"freeze": True}, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post("/_mock/reset?namespace=*", headers={"Origin": server.url}).status_code == 200, "the dashboard's own page"
    assert client.post("/_mock/reset?namespace=*").status_code == 200, "tools send no Origin"
