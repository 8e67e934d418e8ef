"""The mock's bodies match what real fal traffic recorded (issue: fifteen differences).

Each test pins the recorded bytes or keys; the README's fidelity notes cite the recordings.
"""
from __future__ import annotations

import orjson

from mock_server.core import fal_errors
from mock_server.core.faults import Fault
from mock_server.core.queue import LogLine
from mock_server.endpoints.fal_app.cdn import cdn_file_name
from mock_server.endpoints.fal_app.validation import model_error_answer


def test_gateway_errors_are_written_with_a_space_after_the_colon():
    # fal's gateway (not the app) writes its own 401/403/404 bodies with json.dumps spacing
    assert fal_errors.unknown_key().body == b'{"detail": "No user found for Key ID and Secret"}'
    assert fal_errors.invalid_key_format().body == (
        b'{"detail": "Invalid Key Authorization header format. Expected \'<key_id>:<key_secret>\'."}')
    assert fal_errors.unauthorized("Missing authorization header").body == b'{"detail": "Missing authorization header"}'


def test_an_unknown_application_is_named_by_its_alias_alone():
    answer = fal_errors.app_not_found("fal-ai/falsprite")
    assert (answer.status, answer.body) == (404, b'{"detail": "Application \'falsprite\' not found"}')
    assert fal_errors.app_not_found("fal-ai/wan-25-preview/image-to-image").body == (
        b'{"detail": "Application \'wan-25-preview\' not found"}')


def test_an_exhausted_balance_answers_fals_403():
    answer = fal_errors.exhausted_balance()
    assert (answer.status, answer.body) == (403, b'{"detail": "User is locked. Reason: Exhausted balance. '
                                                 b'Top up your balance at fal.ai/dashboard/billing."}')
    status, body, _headers, content_type = Fault(kind="exhausted_balance").http_answer("rid")
    assert (status, body, content_type) == (403, answer.body, b"application/json")


def test_http_errors_401_403_404_answer_the_gateway_bodies_fal_sends():
    for status, expected in ((401, fal_errors.unknown_key()), (403, fal_errors.exhausted_balance()),
                             (404, fal_errors.result_not_found())):
        got_status, body, _headers, _type = Fault(kind="http_error", status=status).http_answer(None)
        assert (got_status, body) == (status, expected.body)
    # a rule that words its own error keeps the request-error shape
    _status, body, headers, _type = Fault(kind="http_error", status=403, message="nope").http_answer(None)
    assert orjson.loads(body) == {"detail": "nope", "error_type": "internal_error"}


def test_still_in_progress_keys_come_in_alphabetical_order():
    urls = {"request_id": "r", "response_url": "u/r", "status_url": "u/r/status", "cancel_url": "u/r/cancel"}
    body = orjson.loads(fal_errors.still_in_progress(urls).body)
    assert list(body) == ["cancel_url", "detail", "request_id", "response_url", "status_url"]


def test_typed_errors_link_to_the_errors_page_without_a_slash_and_use_the_recorded_sentence():
    answer = model_error_answer("file_download_error", fal_errors.TYPED_ERROR_MESSAGES["file_download_error"],
                                ["body", "image_urls", 0], input="https://x/a.png")
    assert orjson.loads(answer.body) == {"detail": [{
        "loc": ["body", "image_urls", 0],
        "msg": "Failed to download the file. Please check if the URL is accessible and try again.",
        "type": "file_download_error", "url": "https://docs.fal.ai/errors#file_download_error",
        "input": "https://x/a.png"}]}


def test_log_entries_carry_timestamp_message_and_labels_only():
    assert LogLine(0.0, "hello").as_json() == {"timestamp": "1970-01-01T00:00:00.000000", "message": "hello", "labels": {}}


def test_output_file_names_have_fals_cdn_shape_and_are_stable():
    name = cdn_file_name("request/0", "png")
    assert len(name) == len("IXN1B_4MHnozvltxEHfvX_BwTMO9xM.png") and name[21] == "_" and name.endswith(".png")
    assert name == cdn_file_name("request/0", "png") != cdn_file_name("request/1", "png")


def test_a_produced_result_carries_the_billable_units_of_its_images(tmp_path):
    """fal.run 200s carry x-fal-billable-units (recorded: "1"); one unit per image."""
    import asyncio

    from mock_server.core.endpoint import EndpointEnv
    from mock_server.core.files import FileStore
    from mock_server.endpoints.wan25 import Wan25ImageToImage

    endpoint = Wan25ImageToImage()
    parsed = endpoint.parse(b'{"prompt": "x", "image_urls": ["https://e.com/a.png"], "num_images": 3, "seed": 1}')
    env = EndpointEnv(files=FileStore(), file_url=lambda n: n, own_file_name=lambda u: None)
    answer = asyncio.run(endpoint.produce(parsed.params, "rid", env))
    assert answer.status == 200 and ("x-fal-billable-units", "3") in answer.headers
