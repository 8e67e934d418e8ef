"""What real fal traffic was recorded doing (fal-mock issue 17; README, Fidelity notes), checked
on both targets: a live run (``--target live``) confirms each point or reports the drift.

Points 1 and 6 cost nothing (fal answers before any app runs); point 5 is a submit-then-cancel
canary; point 4 generates images (``costly``: two, within ``--max-images``)."""
from __future__ import annotations

import uuid

import orjson
import pytest

from contract_tests.rules import valid_body
from contract_tests.support import APP
from contract_tests.test_queue import _check_settled, _json, _settle

OWNER_ALIAS = "/".join(APP.split("/")[:2])  # fal-ai/wan-25-preview: the only form status URLs take
IN_QUEUE_KEYS = ["status", "request_id", "response_url", "status_url", "cancel_url", "logs", "metrics",
                 "queue_position"]


def _queue_base(target) -> str:
    """The queue host's root URL (``https://queue.fal.run/`` live)."""
    return target.queue_url[: -len(APP)]


def _run_base(target) -> str:
    """The run host's root URL (``https://fal.run/`` live)."""
    return target.run_url[: -len(APP)]


def test_status_result_and_cancel_on_the_full_endpoint_path_answer_405(target, record):
    """Point 1, recorded: ``GET queue.fal.run/fal-ai/ffmpeg-api/compose/requests/{id}`` answered
    405 (the fix was the owner/alias form; fal's queue docs, 2026).  Free: no request runs."""
    base = f"{_queue_base(target)}{APP}/requests/{uuid.uuid4()}"
    for label, method, url in (("status", "GET", base + "/status"), ("result", "GET", base),
                               ("cancel", "PUT", base + "/cancel")):
        response = target.http.request(method, url)
        record(label, response.status_code, _json(response))
        assert response.status_code == 405, f"{label} on the full endpoint path answered {response.status_code}"


def test_an_unknown_application_is_named_by_its_alias_on_both_hosts(target, record):
    """Point 6, recorded: ``{"detail": "Application 'falsprite' not found"}``, the same 404 on
    fal.run and queue.fal.run.  Free: no application answers."""
    alias = f"no-such-app-{uuid.uuid4().hex[:8]}"
    for label, base in (("run", _run_base(target)), ("queue", _queue_base(target))):
        response = target.http.post(f"{base}fal-ai/{alias}", json={"prompt": "x"})
        record(label, response.status_code, _json(response))
        assert response.status_code == 404, f"{label}: {response.status_code}"
        assert _json(response) == {"detail": f"Application '{alias}' not found"}, label


@pytest.mark.canary
def test_submit_and_in_queue_status_carry_null_logs_and_empty_metrics(target, spend, record):
    """Point 5, four recordings: the submit body and an IN_QUEUE status carry ``"logs": null,
    "metrics": {}`` before ``queue_position``, and their URLs use the owner/alias form.  The
    request is cancelled at once (refunded when the cancel lands in time)."""
    spend(1)
    submitted = target.http.post(target.queue_url, json=valid_body())
    body = _json(submitted)
    record("submit", submitted.status_code, body)
    assert submitted.status_code == 200, body
    handle = target.client.get_handle(APP, body["request_id"])
    try:
        assert list(body) == IN_QUEUE_KEYS, list(body)
        assert body["status"] == "IN_QUEUE" and body["logs"] is None and body["metrics"] == {}, body
        for key in ("response_url", "status_url", "cancel_url"):
            assert f"/{OWNER_ALIAS}/requests/" in body[key] and f"/{APP}/" not in body[key], body[key]
        polled = target.http.get(body["status_url"])
        status = _json(polled)
        record("status", polled.status_code, status)
        if status.get("status") == "IN_QUEUE":  # it may have started already
            assert polled.status_code == 202 and list(status) == IN_QUEUE_KEYS, status
            assert status["logs"] is None and status["metrics"] == {}, status
    finally:
        target.http.put(body["cancel_url"])
        code, result, _ = _settle(target, handle)
        _check_settled(target, "submit-shape canary", code, result)


@pytest.mark.costly
def test_a_successful_run_and_queue_result_carry_billable_units(target, spend, record):
    """Point 4, recorded on fal.run 200s: ``x-fal-billable-units`` (``1`` or ``1.0``); apps
    meter cost from it.  One image on the run host, one through the queue."""
    spend(2)
    status, body, headers = target.post_raw(orjson.dumps(valid_body()))
    record("run", status, body)
    assert status == 200, body
    assert float(headers["x-fal-billable-units"]) >= 1, headers
    handle = target.client.submit(APP, valid_body())
    _settle(target, handle)
    response = target.http.get(handle.response_url)  # the result GET's own headers
    record("result", response.status_code, _json(response))
    assert response.status_code == 200, _json(response)
    assert float(response.headers["x-fal-billable-units"]) >= 1, dict(response.headers)
