"""The queue contract through the official client: lifecycle order, result before completion,
cancel semantics, unknown ids (PROTOCOL.md §3.3-§3.7).

The canaries submit a valid request and cancel it at once: on the real service that costs
nothing when the cancel lands before a runner picks the request up.  Each reserves one
image from the budget and gives it back when the result proves nothing was generated (499).
"""
from __future__ import annotations

import re
import time
import uuid

import fal_client
import pytest

from contract_tests.rules import PROMPT, valid_body
from contract_tests.support import APP, check_output, verify_images

STILL_IN_PROGRESS = "Request is still in progress"


def _json(response):
    try:
        return response.json()
    except ValueError:
        return {"<non-json>": response.text[:300]}


def _settle(target, handle):
    """Poll until COMPLETED (bounded by the target's deadline); then GET the result raw."""
    deadline = time.monotonic() + target.deadline
    while True:
        status = handle.status(with_logs=False)
        if isinstance(status, fal_client.Completed):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"request {handle.request_id} not COMPLETED after {target.deadline:g} s (last: {status})")
        time.sleep(target.interval)
    response = handle.client.get(handle.response_url)
    return response.status_code, _json(response), status


def _check_settled(target, what: str, status_code: int, body) -> None:
    """After a cancel: 499 (cancelled; nothing generated, refund) or 200 (it completed anyway)."""
    if status_code == 499:
        target.budget.refund(1, f"{what}: cancelled in time (499)")
        assert isinstance(body, dict) and isinstance(body.get("detail"), str), body
    else:
        assert status_code == 200, f"result after cancel answered {status_code}: {body}"
        assert not check_output(body, prompt=PROMPT), check_output(body, prompt=PROMPT)
        assert not verify_images(target.download, body)


@pytest.mark.canary
def test_cancel_right_after_submit(target, spend, record):
    """Cancel at once: 202 CANCELLATION_REQUESTED (or 400 ALREADY_COMPLETED if it already ran);
    after a 202 the result answers 499 or the request completed; a second cancel is 400."""
    spend(1)
    handle = target.client.submit(APP, valid_body())
    assert isinstance(handle.request_id, str) and handle.request_id
    response = handle.client.put(handle.cancel_url)
    body = _json(response)
    record("cancel", response.status_code, body)
    assert response.status_code in (202, 400), f"cancel answered {response.status_code}: {body}"
    if response.status_code == 202:
        assert body.get("status") == "CANCELLATION_REQUESTED", body
    else:
        assert body.get("status") == "ALREADY_COMPLETED" or "detail" in body, body

    code, result, completed = _settle(target, handle)
    record("result_after_cancel", code, result)
    if response.status_code == 400:
        assert code == 200, f"ALREADY_COMPLETED, but the result answered {code}"
    _check_settled(target, "cancel canary", code, result)
    assert isinstance(completed.metrics, dict)

    again = handle.client.put(handle.cancel_url)
    record("cancel_again", again.status_code, _json(again))
    assert again.status_code == 400, f"cancelling a finished request answered {again.status_code}"


@pytest.mark.canary
def test_result_before_completion(target, spend, record):
    """GET response_url right after submit: 400 ``detail`` "Request is still in progress", or 200
    with the output if it already finished.  The request is then cancelled."""
    spend(1)
    handle = target.client.submit(APP, valid_body())
    early = handle.client.get(handle.response_url)
    body = _json(early)
    record("early_result", early.status_code, body)
    assert early.status_code in (400, 200), f"early result answered {early.status_code}: {body}"
    if early.status_code == 400:
        assert isinstance(body, dict) and body.get("detail") == STILL_IN_PROGRESS, body
    else:
        assert not check_output(body, prompt=PROMPT)

    handle.client.put(handle.cancel_url)  # 202 or 400; test_cancel_* checks the codes
    code, result, _ = _settle(target, handle)
    _check_settled(target, "result-before-completion canary", code, result)


def test_unknown_request_id_is_404(target, record):
    """status, result and cancel of an id fal never issued: 404 with a JSON object body."""
    handle = target.client.get_handle(APP, str(uuid.uuid4()))
    with pytest.raises(fal_client.client.FalClientHTTPError) as error:
        handle.status()
    assert error.value.status_code == 404
    record("status", 404, _json(error.value.response))
    for label, response in (("result", handle.client.get(handle.response_url)),
                            ("cancel", handle.client.put(handle.cancel_url))):
        record(label, response.status_code, _json(response))
        assert response.status_code == 404, f"{label} of an unknown id answered {response.status_code}"
        assert isinstance(_json(response), dict)


@pytest.mark.costly
def test_lifecycle_events_then_result(target, spend, record):
    """submit + iter_events(with_logs=True): Queued* -> InProgress* -> Completed (once, last),
    queue positions never grow, logs are lists of log objects; get() honours the output
    contract and each image file matches its metadata; a COMPLETED status without logs
    has ``logs: null``."""
    spend(1)
    handle = target.client.submit(APP, valid_body(seed=4242, image_size="landscape_4_3"))
    deadline = time.monotonic() + target.deadline
    events = []
    for event in handle.iter_events(with_logs=True, interval=target.interval):
        events.append(event)
        if time.monotonic() > deadline and not isinstance(event, fal_client.Completed):
            handle.cancel()
            pytest.fail(f"not COMPLETED after {target.deadline:g} s: {events[-3:]}")
    kinds = "".join({fal_client.Queued: "Q", fal_client.InProgress: "I", fal_client.Completed: "C"}[type(e)] for e in events)
    assert re.fullmatch(r"Q*I*C", kinds), f"status order {kinds}"
    positions = [e.position for e in events if isinstance(e, fal_client.Queued)]
    assert all(isinstance(p, int) and p >= 0 for p in positions), positions
    assert positions == sorted(positions, reverse=True), f"queue positions grew: {positions}"
    for event in events:
        if isinstance(event, (fal_client.InProgress, fal_client.Completed)):
            assert isinstance(event.logs, list), f"with_logs=True but logs = {event.logs!r}"
            for line in event.logs:
                assert isinstance(line, dict) and isinstance(line.get("message"), str), line
    completed = events[-1]
    assert isinstance(completed.metrics, dict)
    assert completed.error is None, f"completed with error {completed.error} ({completed.error_type})"

    result = handle.get()
    record("result", 200, result)
    assert not check_output(result, num_images=1, prompt=PROMPT), check_output(result, num_images=1, prompt=PROMPT)
    assert result["seeds"] == [4242], result["seeds"]
    problems = verify_images(target.download, result)
    assert not problems, problems

    quiet = handle.status(with_logs=False)
    assert isinstance(quiet, fal_client.Completed) and quiet.logs is None
    raw = handle.client.get(handle.status_url, params={"logs": "0"})
    body = _json(raw)
    record("status_completed", raw.status_code, body)
    assert raw.status_code == 200 and body.get("status") == "COMPLETED" and body.get("request_id") == handle.request_id
