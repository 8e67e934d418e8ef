"""The stand-ins for fal's storage hosts: ``/_mock/rest/`` for https://rest.fal.ai/, ``/_mock/cdn/``
for https://v3.fal.media/, and the PUT/POST side of ``/_mock/files/`` (signed PUTs, multipart
parts and completion); :mod:`mock_server.features.storage` keeps the sessions behind them.

- ``POST /_mock/rest/storage/auth/token?storage_type=fal-cdn-v3``   a CDN token (fal key auth)
- ``POST /_mock/rest/storage/upload/initiate[-multipart]``          a signed PUT URL or a multipart upload
- ``POST /_mock/cdn/files/upload[/multipart]``                      raw bytes, or a multipart upload (CDN token)
- ``PUT /_mock/files/{name}?signature=``, ``PUT .../multipart/{uploadId}/{n}``,
  ``POST .../multipart/{uploadId}/complete``

Like fal's hosts they answer CORS preflights, and every answer carries
``Access-Control-Allow-Origin: *``.  Open even with an admin token; journaled like fal calls.
"""
from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request

from mock_server.core import fal_errors
from mock_server.core.answers import Answer
from mock_server.core.namespaces import DEFAULT, HEADER as NAMESPACE_HEADER, namespace_of
from mock_server.core.paths import CDN_PREFIX, FILES_PREFIX, REST_PREFIX
from mock_server.features.storage import JSON_BODY_MAX_BYTES, Outcome, Receiving
from mock_server.web.deps import get_emulator
from mock_server.web.journaling import ENTRY
from mock_server.web.responses import AnswerError, AnswerResponse, RawResponse

_CORS = [(b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", b"ETag")]
_PREFLIGHT = _CORS + [
    (b"access-control-allow-methods", b"GET, HEAD, POST, PUT, OPTIONS"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-max-age", b"86400"),
]
_ANY = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
_NOT_READS = [m for m in _ANY if m not in ("GET", "HEAD")]  # GET/HEAD of a file is the files router's

# raw bodies, no control guards: these stand for fal's own hosts (browsers upload to them too)
router = APIRouter(include_in_schema=False)


# -- answers ------------------------------------------------------------------------------
def _reply(outcome: Outcome, headers: list[tuple[bytes, bytes]] | None = None) -> RawResponse:
    if isinstance(outcome, Answer):
        return _error(outcome)
    return RawResponse(200, orjson.dumps(outcome), _CORS + (headers or []))


def _error(answer: Answer) -> AnswerResponse:
    return AnswerResponse(Answer(answer.status, answer.body, answer.headers + (("access-control-allow-origin", "*"),)))


def _preflight() -> RawResponse:
    return RawResponse(204, b"", _PREFLIGHT)


def _gate(request: Request, allowed: str) -> RawResponse | None:
    """A preflight's 204, or 405 for another method than ``allowed``; None to go on."""
    if request.method == "OPTIONS":
        return _preflight()
    if request.method != allowed:
        return _error(fal_errors.method_not_allowed())
    return None


# -- request parts --------------------------------------------------------------------------
def _base(request: Request) -> str:
    """``scheme://host`` as the caller reached the mock."""
    host = request.headers.get("host")
    if not host:
        server = request.scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else "127.0.0.1"
    return f"{request.scope.get('scheme', 'http')}://{host}"


def _files_base(request: Request) -> str:
    return _base(request) + FILES_PREFIX


async def _body(request: Request, limit: int, received: Receiving | None = None) -> bytes:
    """The whole body; fal's 413 past ``limit`` bytes, or when ``received`` (an upload's
    count against the upload budget) says the budget is spent."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise AnswerError(fal_errors.body_too_large(limit))
        if received is not None and chunk and not received.add(len(chunk)):
            raise AnswerError(fal_errors.body_too_large(received.sessions.budget))
    return bytes(body)


async def _upload_body(request: Request, limit: int, received: Receiving) -> bytes:
    """An upload's body, counted in flight until the route releases ``received``."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > received.sessions.budget:  # refused before reading
        raise AnswerError(fal_errors.body_too_large(received.sessions.budget))
    return await _body(request, limit, received)


async def _json_body(request: Request) -> dict[str, Any] | Answer:
    raw = await _body(request, JSON_BODY_MAX_BYTES)
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return fal_errors.bad_request("Request body is not valid JSON")
    if not isinstance(body, dict):
        return fal_errors.bad_request("Request body must be a JSON object")
    return body


def _key_denial(request: Request) -> Answer | None:
    """fal's key rules, as for any rest.fal.ai call (a call through the server proxy may come
    without a key: the proxy adds the server's own), through the fal routes' own check."""
    entry = request.scope.get(ENTRY)
    proxied = bool(entry is not None and entry.proxied)
    authorization = _raw_authorization(request.scope)
    denied = request.app.state.fal_calls.keys.denied(authorization, proxied)
    if denied is not None and authorization is None:
        return fal_errors.storage_authorization_required()  # rest.fal.ai words it its own way
    return denied


def _raw_authorization(scope: dict) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value
    return None


def _cdn_namespace(request: Request) -> str:
    """A CDN call's namespace: its header's, else that of the key its token was issued to."""
    if request.headers.get(NAMESPACE_HEADER.decode()):
        return namespace_of(request.scope["headers"])
    _, _, token = (request.headers.get("authorization") or "").partition(" ")
    namespace = get_emulator(request).uploads.token_namespaces.get(token.strip(), DEFAULT)
    entry = request.scope.get(ENTRY)
    if entry is not None:
        entry.owner = namespace  # the journal files the call there too
    return namespace


def _claimed(request: Request, outcome: Any, url_key: str, namespace: str) -> Any:
    """``outcome``, its upload's file now known to be ``namespace``'s (a reset of that
    namespace forgets it: docs/namespaces.md)."""
    if isinstance(outcome, dict) and isinstance(outcome.get(url_key), str):
        get_emulator(request).files.claim(outcome[url_key].rsplit("/", 1)[-1], namespace)
    return outcome


# -- rest.fal.ai ------------------------------------------------------------------------------
async def _rest_call(request: Request) -> Answer | None:
    """The gate of the REST routes: preflight, method, key, ``?storage_type=``."""
    return _key_denial(request) or get_emulator(request).uploads.storage_type_denial(request.query_params.get("storage_type"))


async def _rest_refusal(request: Request) -> RawResponse | None:
    """The answer refusing a rest.fal.ai POST (gate, key, storage type), or None to proceed."""
    gated = _gate(request, "POST")
    if gated is not None:
        return gated
    denied = await _rest_call(request)
    return None if denied is None else _error(denied)


def _cdn_refusal(request: Request) -> RawResponse | None:
    """The answer refusing a CDN upload POST (gate, CDN token), or None to proceed."""
    gated = _gate(request, "POST")
    if gated is not None:
        return gated
    denied = get_emulator(request).uploads.token_denial(request.headers.get("authorization"))
    return None if denied is None else _error(denied)


@router.api_route(REST_PREFIX + "storage/auth/token", methods=_ANY)
async def issue_token(request: Request) -> RawResponse:
    refused = await _rest_refusal(request)
    if refused is not None:
        return refused
    await _body(request, JSON_BODY_MAX_BYTES)  # `{}`; read so the connection stays clean
    return _reply(get_emulator(request).uploads.issue_token(_base(request) + CDN_PREFIX.rstrip("/"),
                                                            namespace_of(request.scope["headers"])))


@router.api_route(REST_PREFIX + "storage/upload/initiate", methods=_ANY)
async def initiate(request: Request) -> RawResponse:
    return await _initiate(request, multipart=False)


@router.api_route(REST_PREFIX + "storage/upload/initiate-multipart", methods=_ANY)
async def initiate_multipart(request: Request) -> RawResponse:
    return await _initiate(request, multipart=True)


async def _initiate(request: Request, multipart: bool) -> RawResponse:
    refused = await _rest_refusal(request)
    if refused is not None:
        return refused
    body = await _json_body(request)
    if isinstance(body, Answer):
        return _error(body)
    uploads = get_emulator(request).uploads
    start = uploads.initiate_multipart if multipart else uploads.initiate
    return _reply(_claimed(request, start(body, _files_base(request)), "file_url", namespace_of(request.scope["headers"])))


# -- v3.fal.media -------------------------------------------------------------------------------
@router.api_route(CDN_PREFIX + "files/upload", methods=_ANY)
async def cdn_upload(request: Request) -> RawResponse:
    refused = _cdn_refusal(request)
    if refused is not None:
        return refused
    uploads = get_emulator(request).uploads
    received = uploads.receiving()
    try:
        data = await _upload_body(request, uploads.single_cap, received)
        received.release()  # the bytes move to the store (no await in between)
        outcome = uploads.cdn_upload(data, request.headers.get("content-type"),
                                     request.headers.get("x-fal-file-name"), _files_base(request))
        return _reply(_claimed(request, outcome, "access_url", _cdn_namespace(request)))
    finally:
        received.release()


@router.api_route(CDN_PREFIX + "files/upload/multipart", methods=_ANY)
async def cdn_multipart(request: Request) -> RawResponse:
    refused = _cdn_refusal(request)
    if refused is not None:
        return refused
    uploads = get_emulator(request).uploads
    await _body(request, JSON_BODY_MAX_BYTES)
    outcome = uploads.cdn_multipart(request.headers.get("content-type"), request.headers.get("x-fal-file-name"),
                                    _files_base(request))
    return _reply(_claimed(request, outcome, "access_url", _cdn_namespace(request)))


@router.api_route(REST_PREFIX + "{rest:path}", methods=_ANY)
@router.api_route(CDN_PREFIX + "{rest:path}", methods=_ANY)
async def unknown_host_path(request: Request) -> AnswerResponse:
    return _error(fal_errors.path_not_found(request.scope["path"]))


# -- PUT/POST on /_mock/files/ ----------------------------------------------------------------------
@router.api_route(FILES_PREFIX + "{name}", methods=_NOT_READS)
async def signed_put(name: str, request: Request) -> RawResponse:
    gated = _gate(request, "PUT")
    if gated is not None:
        return gated
    uploads = get_emulator(request).uploads
    denied = uploads.signed_put_denial(name, request.query_params.get("signature", ""))
    if denied is not None:
        return _error(denied)
    received = uploads.receiving()
    try:
        data = await _upload_body(request, uploads.single_cap, received)
        received.release()  # the bytes move to the store (no await in between)
        return _reply(uploads.signed_put(name, data, request.headers.get("content-type")))
    finally:
        received.release()


@router.api_route(FILES_PREFIX + "{name}/multipart/{upload_id}/complete", methods=_NOT_READS)
async def complete(name: str, upload_id: str, request: Request) -> RawResponse:
    gated = _gate(request, "POST")
    if gated is not None:
        return gated
    body = await _json_body(request)
    if isinstance(body, Answer):
        return _error(body)
    return _reply(await get_emulator(request).uploads.complete(name, upload_id, body, _files_base(request)))


@router.api_route(FILES_PREFIX + "{name}/multipart/{upload_id}/{number:int}", methods=_NOT_READS)
async def put_part(name: str, upload_id: str, number: int, request: Request) -> RawResponse:
    gated = _gate(request, "PUT")
    if gated is not None:
        return gated
    uploads = get_emulator(request).uploads
    denied = uploads.part_denial(name, upload_id, number)
    if denied is not None:
        return _error(denied)
    received = uploads.receiving()
    try:
        data = await _upload_body(request, uploads.part_cap, received)
        outcome = await uploads.put_part(name, upload_id, number, data, received)
    finally:
        received.release()
    if isinstance(outcome, Answer):
        return _error(outcome)
    return _reply(outcome, [(b"etag", outcome["etag"].encode())])


@router.api_route(FILES_PREFIX + "{rest:path}", methods=_NOT_READS)
async def unknown_file_path(request: Request) -> RawResponse:
    if request.method == "OPTIONS":
        return _preflight()
    return _error(fal_errors.path_not_found(request.scope["path"]))
