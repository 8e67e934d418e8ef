"""The fal_mock fixture with the real fal_client: journal, clock, poll counts, faults."""
from __future__ import annotations

import asyncio

import fal_client
import httpx
import pytest
from fal_client.client import FalClientHTTPError

from mock_server.core.faults import FaultPlan

APP = "fal-ai/wan-25-preview/image-to-image"
ARGS = {"prompt": "a red fox", "image_urls": ["https://example.com/fox.png"], "seed": 3}


def test_fixture_wires_the_sync_client_and_journals_the_call(fal_mock):
    result = fal_client.run(APP, ARGS)
    assert result["seeds"] == [3] and result["actual_prompt"] == "a red fox"
    [call] = fal_mock.requests(kind="run")
    assert call.json == ARGS and call.status == 200 and call.endpoint_id == APP
    assert call.headers["authorization"] == "Key fal-mock:***", "the secret half of the key is redacted"
    assert call.request_id and call.method == "POST"
    assert httpx.get(result["images"][0]["url"]).status_code == 200


def test_each_test_starts_from_a_clean_mock(fal_mock):
    assert fal_mock.requests() == [] and len(fal_mock.mock.queue) == 0
    assert not fal_mock.clock.frozen


@pytest.mark.fal_mock(polls=3)
def test_poll_count_progression_completes_on_the_third_status_call(fal_mock):
    updates = []
    fal_client.subscribe(APP, ARGS, with_logs=True, on_queue_update=updates.append)
    kinds = [type(u).__name__ for u in updates]
    assert kinds == ["Queued", "InProgress", "Completed"]
    assert [e.kind for e in fal_mock.requests(kind=("submit", "status", "result"))] == \
        ["submit", "status", "status", "status", "status", "result"], "subscribe polls once more before the result"


@pytest.mark.fal_mock(profile="default", workers=1)
def test_a_frozen_clock_holds_the_queue_until_advanced(fal_mock):
    fal_mock.clock.freeze()
    first = fal_client.submit(APP, ARGS)
    second = fal_client.submit(APP, ARGS)
    assert isinstance(second.status(), fal_client.Queued) and second.status().position == 1
    fal_mock.clock.advance(0.5)
    assert isinstance(first.status(with_logs=True), fal_client.InProgress)
    assert second.status().position == 0
    fal_mock.clock.advance(10)
    done = first.status()
    assert isinstance(done, fal_client.Completed) and done.metrics["inference_time"] >= 2.0
    # the one worker took the second request the moment the first finished
    queue = fal_mock.mock.queue
    assert queue.get(second.request_id).started_at == queue.get(first.request_id).finished_at


def test_injected_503_with_request_id_is_not_retried_by_the_python_client(fal_mock):
    fal_mock.fail_next("run", status=503)
    with pytest.raises(FalClientHTTPError) as raised:
        fal_client.run(APP, ARGS)
    assert raised.value.status_code == 503 and raised.value.error_type == "runner_connection_error"
    assert [c.fault for c in fal_mock.requests(kind="run")] == ["http_error 503"]


def test_an_ingress_style_502_is_retried_and_then_succeeds(fal_mock):
    fal_mock.fail_next("status", status=502, nginx=True, request_id_header=False)
    handle = fal_client.submit(APP, ARGS)
    assert handle.get()["seeds"] == [3]
    statuses = fal_mock.requests(kind="status")
    assert statuses[0].fault == "http_error 502" and statuses[0].status == 502
    assert statuses[1].status == 200


def test_429_carries_retry_after_and_the_client_retries(fal_mock):
    fal_mock.fail_next("submit", status=429, retry_after=2)
    handle = fal_client.submit(APP, ARGS)
    submits = fal_mock.requests(kind="submit")
    assert [s.status for s in submits] == [429, 200]
    assert handle.get()["seeds"] == [3]
    response = httpx.post(fal_mock.queue_url + APP, json=ARGS, headers={"Authorization": "Key a:b"})
    assert response.status_code == 200
    fal_mock.fail_next("submit", status=429, retry_after=2)
    limited = httpx.post(fal_mock.queue_url + APP, json=ARGS, headers={"Authorization": "Key a:b"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"


def test_a_model_error_ends_completed_and_the_result_raises_the_typed_error(fal_mock):
    fal_mock.fail_next("submit", kind="model_error", error_type="content_policy_violation")
    handle = fal_client.submit(APP, ARGS)
    status = handle.status()
    assert isinstance(status, fal_client.Completed) and status.error is None
    with pytest.raises(FalClientHTTPError) as raised:
        handle.get()
    assert raised.value.status_code == 422
    assert raised.value.message[0]["type"] == "content_policy_violation"
    assert raised.value.message[0]["loc"] == ["body", "prompt"]
    assert raised.value.message[0]["url"] == "https://docs.fal.ai/errors#content_policy_violation"


def test_a_runner_error_shows_on_the_completed_status(fal_mock):
    fal_mock.fail_next("submit", kind="runner_error", error_type="request_timeout")
    handle = fal_client.submit(APP, ARGS)
    status = handle.status()
    assert isinstance(status, fal_client.Completed)
    assert (status.error, status.error_type) == ("Request timed out", "request_timeout")
    with pytest.raises(FalClientHTTPError) as raised:
        handle.get()
    assert raised.value.status_code == 504 and raised.value.error_type == "request_timeout"


def test_a_prompt_matching_rule_fails_only_those_requests(fal_mock):
    fal_mock.add_fault("run", times=None, prompt="forbidden", kind="model_error")
    assert fal_client.run(APP, ARGS)["seeds"] == [3]
    with pytest.raises(FalClientHTTPError):
        fal_client.run(APP, {**ARGS, "prompt": "a forbidden fruit"})
    assert [c.fault for c in fal_mock.requests(kind="run")] == [None, "model_error content_policy_violation"]


def test_a_dropped_connection_is_retried_by_the_client(fal_mock):
    fal_mock.fail_next("status", kind="drop")
    handle = fal_client.submit(APP, ARGS)
    assert handle.get()["seeds"] == [3]
    statuses = fal_mock.requests(kind="status")
    assert statuses[0].fault == "drop" and statuses[0].status is None
    assert statuses[-1].status == 200


def test_a_truncated_body_fails_the_read_then_the_retry_succeeds(fal_mock):
    fal_mock.fail_next("result", kind="truncate")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(fal_mock.queue_url + "fal-ai/wan-25-preview/requests/x", headers={"Authorization": "Key a:b"})
    handle = fal_client.submit(APP, ARGS)
    fal_mock.fail_next("result", kind="truncate")
    assert handle.get()["seeds"] == [3]
    assert [r.fault for r in fal_mock.requests(kind="result")] == ["truncate", "truncate", None]


def test_added_latency_delays_the_answer(fal_mock):
    fal_mock.fail_next("run", kind="latency", delay=0.2)
    fal_client.run(APP, ARGS)
    [call] = fal_mock.requests(kind="run")
    assert call.fault == "latency 0.2" and call.duration_ms >= 200


def test_seeded_random_rules_replay_exactly():
    def pattern(seed: int) -> list[bool]:
        plan = FaultPlan()
        plan.add("status", times=None, probability=0.5, seed=seed)
        return [plan.match("status") is not None for _ in range(40)]

    assert pattern(7) == pattern(7)
    assert pattern(7) != pattern(8)
    assert 5 < sum(pattern(7)) < 35


def test_after_skips_the_first_matching_calls():
    plan = FaultPlan()
    plan.add("status", after=2, status=500)
    assert [plan.match("status") is not None for _ in range(4)] == [False, False, True, False]


def test_async_client_is_wired_too(fal_mock):
    async def main():
        updates = []
        result = await fal_client.subscribe_async(APP, ARGS, with_logs=True, on_queue_update=updates.append)
        return result, updates

    result, updates = asyncio.run(main())
    assert result["seeds"] == [3] and type(updates[-1]).__name__ == "Completed"


def test_control_api_over_http(fal_mock):
    control = httpx.Client(base_url=fal_mock.url)
    assert control.post("/_mock/clock", json={"freeze": True}).json()["frozen"] is True
    at = control.get("/_mock/clock").json()["now"]
    assert control.post("/_mock/clock", json={"advance": 30}).json()["now"] == pytest.approx(at + 30)
    rule = control.post("/_mock/faults?namespace=*", json={"on": "run", "status": 500}).json()
    assert rule["fault"]["status"] == 500 and rule["times"] == 1
    assert fal_client.run  # the rule fires on the next run through any client
    assert httpx.post(fal_mock.run_url + APP, json=ARGS, headers={"Authorization": "Key a:b"}).status_code == 500
    assert control.get("/_mock/faults").json()["rules"][0]["fired"] == 1
    assert control.delete("/_mock/faults?namespace=*").json() == {"rules": []}
    assert control.post("/_mock/faults?namespace=*", json={"on": "nowhere"}).status_code == 400
    journal = control.get("/_mock/requests", params={"kind": "run", "body": "0"}).json()
    assert journal["count"] == 1 and journal["requests"][0]["fault"] == "http_error 500"
    assert "body" not in journal["requests"][0]
    config = control.post("/_mock/config", json={"profile": "default", "workers": 3}).json()
    assert (config["profile"], config["workers"]) == ("default", 3)
    assert control.post("/_mock/config", json={"colour": "red"}).status_code == 400


def test_the_journal_is_bounded_and_counts_what_it_dropped(fal_mock):
    fal_mock.journal.resize(3)
    try:
        for _ in range(5):
            httpx.get(fal_mock.queue_url + "fal-ai/wan-25-preview/requests/none/status", headers={"Authorization": "Key a:b"})
        assert len(fal_mock.requests()) == 3 and fal_mock.journal.dropped == 2
        assert httpx.get(fal_mock.url + "/_mock/requests").json()["dropped"] == 2
    finally:
        fal_mock.journal.resize(1000)


def test_a_fault_that_never_fired_fails_the_test_at_teardown(pytester):
    pytester.makepyfile("""
        def test_arranges_but_never_calls(fal_mock):
            fal_mock.fail_next("submit", status=500)
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fault rule(s) never fired*"])


def test_a_malformed_own_file_url_is_an_ordinary_remote_input_not_a_500(fal_mock):
    # port out of range: urlsplit(...).port raises; it must not reach the client as a 500
    result = fal_client.run(APP, {**ARGS, "image_urls": ["http://127.0.0.1:99999/_mock/files/x.png"]})
    assert result["seeds"] == [3] and len(result["images"]) == 1
