"""fal's error answers that are not schema validation: one function per kind.

Two body families exist (fal docs, PROTOCOL.md §5):
- platform ("request") errors: flat ``{"detail": str, "error_type": str}`` plus the
  ``X-Fal-Error-Type`` header (fal.ai/docs/documentation/model-apis/request-errors);
- app errors: ``{"detail": str}`` (fal SDK ``AppException``, unknown path 404).
Where fal's exact wording is unknown, the text chosen here is marked so in README.
"""
from __future__ import annotations

import json

import orjson

from mock_server.core.answers import Answer


#: The ``msg`` of fal's typed model errors (``{"detail": [{"loc", "msg", "type", "url", ...}]}``):
#: the sentence recorded in real fal answers where one is known, else the example on fal's
#: errors page (docs.fal.ai/errors); the README's fidelity notes list which is which.
TYPED_ERROR_MESSAGES: dict[str, str] = {
    # page and recordings agree
    "content_policy_violation": "The content could not be processed because it contained material flagged by a content checker.",
    "generation_timeout": "Generation timeout",
    # recorded (2025-2026 logs and tests of apps on fal); the page shows a shorter example
    "file_download_error": "Failed to download the file. Please check if the URL is accessible and try again.",
    "image_load_error": "Failed to load the image. Please ensure the image file is not corrupted and is in a supported format.",
    "face_detection_error": "No face detected in the image/video. Please ensure the image/video contains a clearly visible face.",
    "no_media_generated": "The model did not generate the expected output for this prompt. Please review your inputs and try again.",
    # the page's examples (no recording found)
    "image_too_large": "Image too large",
    "file_too_large": "File too large",
    "feature_not_supported": "Feature not supported",
    "internal_server_error": "Internal server error",
    "downstream_service_error": "Downstream service error",
    "downstream_service_unavailable": "Downstream service unavailable",
}


def image_too_small_message(min_width: int, min_height: int) -> str:
    """The recorded sentence of ``image_too_small`` (an app's answer, 2026), with the limits."""
    return f"Image dimensions are too small. Minimum dimensions are {min_width}x{min_height} pixels."


def _json(obj: object) -> bytes:
    return orjson.dumps(obj)


def gateway_detail(status: int, message: str) -> Answer:
    """``{"detail": message}`` as fal's gateway writes its own errors (bad or missing key,
    unknown application, a locked account): Python's ``json.dumps`` spacing, ``{"detail": "..."}``
    (recorded: fal-ai/fal-js#153, huggingface_hub's fal cassettes); an app's own bodies, the
    422s and the queue's bodies are compact."""
    return Answer(status, json.dumps({"detail": message}).encode())


def detail(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    """``{"detail": message}`` with the given status."""
    return Answer(status, _json({"detail": message}), headers)


def request_error(status: int, message: str, error_type: str) -> Answer:
    """A platform error: flat body and ``X-Fal-Error-Type`` header."""
    return Answer(status, _json({"detail": message, "error_type": error_type}), (("x-fal-error-type", error_type),))


def path_not_found(path: str) -> Answer:
    # fal SDK api.py: unknown path -> 404 {"detail": "Path /x not found"}, x-fal-billable-units 0
    return detail(404, f"Path {path} not found", (("x-fal-billable-units", "0"),))


def app_not_found(app: str) -> Answer:
    """fal names the application by its alias alone, on the run and the queue host alike
    (recorded: ``{"detail": "Application 'falsprite' not found"}`` for ``owner/falsprite``)."""
    parts = [part for part in app.split("/") if part]
    alias = parts[1] if len(parts) > 1 else (parts[0] if parts else app)
    return gateway_detail(404, f"Application '{alias}' not found")


def result_not_found() -> Answer:
    # Observed live (third-party probe, 2026-10): result GET of an unknown id.
    return detail(404, "Request not found")


def status_not_found() -> Answer:
    # Observed live (same probe): status GET of an unknown id answers the cancel enum's NOT_FOUND.
    return Answer(404, _json({"status": "NOT_FOUND"}))


def method_not_allowed() -> Answer:
    return Answer(405, _json({"detail": "Method Not Allowed"}))


def unauthorized(message: str) -> Answer:
    return gateway_detail(401, message)


def storage_authorization_required() -> Answer:
    # Recorded from rest.fal.ai (the storage host) for a call without a key
    return gateway_detail(401, "Authorization header is required")


def exhausted_balance() -> Answer:
    # Recorded (several apps' logs, 2025-2026): an account out of credits, on any call.
    return gateway_detail(403, "User is locked. Reason: Exhausted balance. "
                               "Top up your balance at fal.ai/dashboard/billing.")


def still_in_progress(request_urls: dict[str, str]) -> Answer:
    # Several fal wrappers record this live body (e.g. storytold/artcraft's Rust client test,
    # QuantumNous/new-api): 400 with the detail plus the request id and its three URLs.
    # fal's keys come in alphabetical order (cancel_url, detail, request_id, response_url, status_url)
    return Answer(400, orjson.dumps({"detail": "Request is still in progress", **request_urls},
                                    option=orjson.OPT_SORT_KEYS))


def queue_full(limit: int) -> Answer:
    # Chosen (no recording of fal's answer): 429 with Retry-After, which both clients retry
    return Answer(429, _json({"detail": f"Too many requests: {limit} are already waiting or running. Retry later."}),
                  (("retry-after", "1"),))


def cancelled() -> Answer:
    # fal SDK: a cancelled app answers JSONResponse({"detail": str(exc)}, 499); the default
    # message is "Request cancelled by the client." (fal/app.py, exceptions/_base.py;
    # e2e test_apps.py::test_app_cancellation expects 499 from the result).
    return detail(499, "Request cancelled by the client.")


def invalid_key_format() -> Answer:
    # Recorded by fal users (storytold/artcraft, ComfyUI-Fal-API-Flux#20) for a key without a colon.
    return unauthorized("Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'.")


def unknown_key() -> Answer:
    # fal-ai/fal#1068, fal-ai/fal-swift#8: 401 for a key fal does not know.
    return unauthorized("No user found for Key ID and Secret")


def body_too_large(limit: int) -> Answer:
    return request_error(413, f"Request body is larger than {limit} bytes", "bad_request")


def internal_error(message: str = "Internal Server Error") -> Answer:
    return request_error(500, message, "internal_error")


def bad_request(message: str) -> Answer:
    return request_error(400, message, "bad_request")
