"""Responses that carry the emulator's answers with the exact bytes and header order the
fast lane writes (content-type, content-length, then the answer's own headers), so the two
faces cannot drift apart."""
from __future__ import annotations

from starlette.responses import Response

from mock_server.core.answers import Answer

JSON = b"application/json"


class RawResponse(Response):
    """A complete response: status, body bytes, extra headers after content-type and length."""

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None,
                 content_type: bytes = JSON) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        raw = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        if headers:
            raw += headers
        self.raw_headers = raw


def answer_headers(answer: Answer, request_id: str | None = None) -> list[tuple[bytes, bytes]]:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    if request_id:
        headers.append((b"x-fal-request-id", request_id.encode()))
    return headers


class AnswerResponse(RawResponse):
    """An :class:`Answer` (and the request id header, when given) as a response."""

    def __init__(self, answer: Answer, request_id: str | None = None) -> None:
        super().__init__(answer.status, answer.body, answer_headers(answer, request_id))


class AnswerError(Exception):
    """Raised by a dependency or route to answer with ``answer`` at once (an exception
    handler in :func:`mock_server.web.app.create_app` turns it into an AnswerResponse)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer
