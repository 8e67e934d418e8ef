"""fal's error answers that are not schema validation: one function per kind.

Two body families exist (fal docs, PROTOCOL.md §5):
- platform ("request") errors: flat ``{"detail": str, "error_type": str}`` plus the
  ``X-Fal-Error-Type`` header (fal.ai/docs/documentation/model-apis/request-errors);
- app errors: ``{"detail": str}`` (fal SDK ``AppException``, unknown path 404).
Where fal's exact wording is unknown, the text chosen here is marked so in README.
"""
from __future__ import annotations

import orjson

from mock_server.core.answers import Answer


def _json(obj: object) -> bytes:
    return orjson.dumps(obj)


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
    return detail(404, f"Application '{app}' not found")


def result_not_found() -> Answer:
    # Observed live (third-party probe, 2026-10): result GET of an unknown id.
    return detail(404, "Request not found")


def status_not_found() -> Answer:
    # Observed live (same probe): status GET of an unknown id answers the cancel enum's NOT_FOUND.
    return Answer(404, _json({"status": "NOT_FOUND"}))


def method_not_allowed() -> Answer:
    return Answer(405, _json({"detail": "Method Not Allowed"}))


def unauthorized(message: str) -> Answer:
    return detail(401, message)


def still_in_progress(request_urls: dict[str, str]) -> Answer:
    # Several fal wrappers record this live body (e.g. storytold/artcraft's Rust client test,
    # QuantumNous/new-api): 400 with the detail plus the request id and its three URLs.
    return Answer(400, _json({"detail": "Request is still in progress", **request_urls}))


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
