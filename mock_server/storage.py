"""Offline storage uploads (``fal_client.upload*``, ``fal.storage.upload``): see install().

Every upload flow of fal-client 1.0.3 and @fal-ai/client 1.10.1 (PROTOCOL.md §3.8) is
served here, with no network: the bytes land in the mock's FileStore and the URL handed
back is ``{scheme}://{host}/_mock/files/{name}`` (the caller's scheme and host as it
reached the mock), which GETs the exact bytes and is read locally when given to an
endpoint as an ``image_urls`` entry.

Routes (``REST_PREFIX`` stands for https://rest.fal.ai/, ``CDN_PREFIX`` for https://v3.fal.media/):

- ``POST /_mock/rest/storage/auth/token?storage_type=fal-cdn-v3``: a CDN token
  ``{token, token_type: "Bearer", base_url: ".../_mock/cdn", expires_at}`` (fal key auth).
- ``POST /_mock/cdn/files/upload``: raw bytes with the token -> ``{"access_url"}``.
- ``POST /_mock/cdn/files/upload/multipart``: with the token -> ``{"access_url", "uploadId"}``;
  then ``PUT {access_url}/multipart/{uploadId}/{n}`` (ETag header and a JSON
  ``{partNumber, etag}`` body) and ``POST {access_url}/multipart/{uploadId}/complete``.
- ``POST /_mock/rest/storage/upload/initiate?storage_type=gcs|fal-cdn-v3``: body
  ``{file_name, content_type}`` -> ``{upload_url, file_url}``; ``PUT upload_url`` stores the bytes.
  ``upload_url`` is the file's own URL plus a one-upload ``?signature=`` (like a signed
  GCS URL): no Authorization is needed (JS sends none, Python sends its key; both work).
- ``POST /_mock/rest/storage/upload/initiate-multipart?storage_type=fal-cdn-v3``:
  ``{upload_url: {file_url}/multipart/{uploadId}, file_url}``; parts and completion as above.

Stored names are ``<16 hex>-<original name>`` with the name cut to ``[A-Za-z0-9._-]``
(its extension kept), or ``<32 hex><.ext from the content type>`` when no name was sent.

Time is the mock's clock (tokens and unfinished uploads expire when it is advanced).
"""
from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import orjson

from mock_server.core import fal_errors
from mock_server._asgi import HttpRequest, Send, send_bytes
from mock_server.core.answers import Answer
from mock_server.core.paths import CDN_PREFIX, FILES_PREFIX, PROXY_PATH, REST_PREFIX

__all__ = [
    "CDN_TOKEN_TTL_SECONDS",
    "MAX_PENDING_MULTIPART",
    "MAX_PENDING_SIGNED",
    "MULTIPART_MAX_BYTES",
    "SINGLE_UPLOAD_MAX_BYTES",
    "UPLOAD_TTL_SECONDS",
    "StorageService",
    "install",
    "stored_name",
]

#: Lifetime of a CDN token (fal_client caches it until ``expires_at``).
CDN_TOKEN_TTL_SECONDS = 3600
#: Tokens remembered at once (oldest forgotten first).
MAX_TOKENS = 10_000
#: A single-request upload may be this large even when ``max_body_bytes`` is smaller:
#: fal_client sends up to 100 MiB in one request, fal-js up to 90 MiB.
SINGLE_UPLOAD_MAX_BYTES = 100 * 1024 * 1024
#: One multipart upload, and all unfinished ones together, hold at most this much.
MULTIPART_MAX_BYTES = 512 * 1024 * 1024
#: Unfinished multipart uploads kept at once (the least recently used is dropped).
MAX_PENDING_MULTIPART = 32
#: Initiated but not yet PUT single uploads kept at once (oldest dropped).
MAX_PENDING_SIGNED = 1024
#: Unfinished uploads (signed URLs, multipart) expire after this long without activity.
UPLOAD_TTL_SECONDS = 3600
#: Completed multipart ids remembered so a retried ``complete`` still answers 200.
MAX_COMPLETED = 1024
#: JSON bodies (initiate, complete) are small.
JSON_BODY_MAX_BYTES = 1024 * 1024
#: S3's part-number range.
MAX_PART_NUMBER = 10_000

_STORAGE_TYPES = frozenset(("fal-cdn-v3", "fal-cdn", "gcs"))
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[ -~]*)?$")
_NAME_MAX = 120
_OCTET = "application/octet-stream"
_CORS = [(b"access-control-allow-origin", b"*"), (b"access-control-expose-headers", b"ETag")]
_PREFLIGHT = _CORS + [
    (b"access-control-allow-methods", b"GET, HEAD, POST, PUT, OPTIONS"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-max-age", b"86400"),
]


# -- names and types ---------------------------------------------------------------------


def clean_content_type(value: Any) -> str:
    """``value`` when it looks like ``type/subtype[; params]`` (printable ASCII), else octet-stream."""
    if isinstance(value, str):
        value = value.strip()
        if len(value) <= 255 and _CONTENT_TYPE.match(value):
            return value
    return _OCTET


def _extension_for(content_type: str) -> str:
    bare = content_type.split(";", 1)[0].strip().lower()
    ext = mimetypes.guess_extension(bare) if bare != _OCTET else None
    return ext if ext and _UNSAFE.sub("", ext) == ext else ".bin"


def stored_name(original: Any, content_type: str) -> str:
    """A fresh, unique FileStore name for an upload.

    ``<16 hex>-<sanitised original>`` keeping the original's extension, or
    ``<32 hex><ext>`` (extension guessed from ``content_type``) when no usable name was given.
    """
    base = ""
    if isinstance(original, str):
        base = original.replace("\\", "/").rsplit("/", 1)[-1]
        base = _UNSAFE.sub("_", base).lstrip(".")
    if not base.strip("._-"):
        return secrets.token_hex(16) + _extension_for(content_type)
    if len(base) > _NAME_MAX:
        stem, dot, ext = base.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            base = stem[: _NAME_MAX - len(ext) - 1] + "." + ext
        else:
            base = base[:_NAME_MAX]
    return f"{secrets.token_hex(8)}-{base}"


def _iso(epoch: float) -> str:
    """ISO-8601 with an explicit ``+00:00`` (fal_client compares it with an aware now())."""
    return datetime.fromtimestamp(int(epoch), timezone.utc).isoformat()


def _strip_etag(value: Any) -> str:
    text = str(value).strip()
    if text.startswith("W/"):
        text = text[2:]
    return text.strip('"')


# -- state ---------------------------------------------------------------------------------


@dataclass
class _Signed:
    secret: str
    content_type: str
    expires_at: float


@dataclass
class _Multipart:
    name: str
    content_type: str
    touched: float
    parts: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # n -> (data, etag)
    size: int = 0


class StorageService:
    """The upload routes' state: issued tokens, signed PUT URLs and unfinished multipart uploads.

    All state is touched only on the server's event loop (no locks needed); every
    collection is bounded by count and expires by the mock's clock.
    """

    def __init__(self, app) -> None:
        self.app = app
        self.tokens: OrderedDict[str, float] = OrderedDict()  # token -> expires_at
        self.signed: OrderedDict[str, _Signed] = OrderedDict()  # file name -> pending PUT
        self.multipart: OrderedDict[str, _Multipart] = OrderedDict()  # uploadId -> upload
        self.completed: OrderedDict[str, str] = OrderedDict()  # uploadId -> file name
        self.pending_bytes = 0

    # -- helpers ------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.app.mock.clock.now()

    @property
    def single_cap(self) -> int:
        return max(self.app.settings.max_body_bytes, SINGLE_UPLOAD_MAX_BYTES)

    def files_base(self, request: HttpRequest) -> str:
        return f"{request.scheme}://{request.host}{FILES_PREFIX}"

    async def _json(self, send: Send, status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await send_bytes(send, status, orjson.dumps(obj), _CORS + (headers or []))

    async def _answer(self, send: Send, answer: Answer) -> None:
        await self.app.send_answer(send, Answer(answer.status, answer.body, answer.headers + (("access-control-allow-origin", "*"),)))

    def _key_auth(self, request: HttpRequest) -> Answer | None:
        """fal's key rules (the app's own), as for any rest.fal.ai call."""
        check = self.app.authorized
        proxied = str(request.scope.get("path", "")).startswith(PROXY_PATH)
        return check(request, proxied)

    def _token_auth(self, request: HttpRequest) -> Answer | None:
        """A CDN call must carry ``Authorization: Bearer <token>`` of a live token issued here."""
        if not self.app.settings.auth:
            return None
        value = request.header("authorization")
        if not value:
            return fal_errors.unauthorized("Missing authorization header")
        scheme, _, token = value.partition(" ")
        expires_at = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires_at is None:
            return fal_errors.unauthorized("Invalid token")
        if self.now >= expires_at:
            self.tokens.pop(token.strip(), None)
            return fal_errors.unauthorized("Token expired")
        return None

    def _storage_type(self, request: HttpRequest) -> Answer | None:
        kind = request.query.get("storage_type") if request.raw_query else None
        if kind is None or kind in _STORAGE_TYPES:
            return None
        return fal_errors.bad_request(f"Unsupported storage_type {kind!r}")

    async def _json_body(self, request: HttpRequest) -> dict | Answer:
        raw = await request.body(JSON_BODY_MAX_BYTES)
        if not raw.strip():
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return fal_errors.bad_request("Request body is not valid JSON")
        if not isinstance(body, dict):
            return fal_errors.bad_request("Request body must be a JSON object")
        return body

    def _expire(self) -> None:
        now = self.now
        for token in [t for t, exp in self.tokens.items() if now >= exp]:
            del self.tokens[token]
        for name in [n for n, s in self.signed.items() if now >= s.expires_at]:
            del self.signed[name]
        for upload_id in [u for u, m in self.multipart.items() if now >= m.touched + UPLOAD_TTL_SECONDS]:
            self._drop_multipart(upload_id)

    def _drop_multipart(self, upload_id: str) -> None:
        upload = self.multipart.pop(upload_id, None)
        if upload is not None:
            self.pending_bytes -= upload.size

    def forget_uploads(self) -> None:
        """Drop unfinished uploads (on the mock's reset; issued tokens stay valid, clients cache them)."""
        self.signed.clear()
        self.multipart.clear()
        self.completed.clear()
        self.pending_bytes = 0

    def _store(self, name: str, data: bytes, content_type: str) -> None:
        self.app.mock.files.add_upload(name, data, content_type)

    # -- rest.fal.ai -----------------------------------------------------------------------
    async def rest(self, request: HttpRequest, send: Send) -> None:
        route = request.path[len(REST_PREFIX):].strip("/")
        handlers = {
            "storage/auth/token": self._issue_token,
            "storage/upload/initiate": self._initiate,
            "storage/upload/initiate-multipart": self._initiate_multipart,
        }
        handler = handlers.get(route)
        if await self._admit_post(request, send, handler is not None, self._rest_check):
            await handler(request, send)

    def _rest_check(self, request: HttpRequest) -> Answer | None:
        return self._key_auth(request) or self._storage_type(request)

    async def _admit_post(self, request: HttpRequest, send: Send, known: bool,
                          check: Callable[[HttpRequest], Answer | None]) -> bool:
        """The gate of the POST-only storage routes: unknown path 404, CORS preflight 204,
        another method 405, then ``check`` (auth); True when the handler should run."""
        if not known:
            await self._answer(send, fal_errors.path_not_found(request.path))
        elif request.method == "OPTIONS":
            await send_bytes(send, 204, b"", _PREFLIGHT)
        elif request.method != "POST":
            await self._answer(send, fal_errors.method_not_allowed())
        else:
            denied = check(request)
            if denied is None:
                return True
            await self._answer(send, denied)
        return False

    async def _issue_token(self, request: HttpRequest, send: Send) -> None:
        await request.body(JSON_BODY_MAX_BYTES)  # `{}`; read so the connection stays clean
        self._expire()
        token = secrets.token_urlsafe(32)
        expires_at = float(int(self.now + CDN_TOKEN_TTL_SECONDS))
        self.tokens[token] = expires_at
        while len(self.tokens) > MAX_TOKENS:
            self.tokens.popitem(last=False)
        await self._json(send, 200, {
            "token": token,
            "token_type": "Bearer",
            "base_url": f"{request.scheme}://{request.host}{CDN_PREFIX.rstrip('/')}",
            "expires_at": _iso(expires_at),
        })

    async def _initiate(self, request: HttpRequest, send: Send) -> None:
        body = await self._json_body(request)
        if isinstance(body, Answer):
            await self._answer(send, body)
            return
        content_type = clean_content_type(body.get("content_type"))
        name = stored_name(body.get("file_name"), content_type)
        self._expire()
        secret = secrets.token_hex(16)
        self.signed[name] = _Signed(secret, content_type, self.now + UPLOAD_TTL_SECONDS)
        while len(self.signed) > MAX_PENDING_SIGNED:
            self.signed.popitem(last=False)
        file_url = self.files_base(request) + name
        await self._json(send, 200, {"upload_url": f"{file_url}?signature={secret}", "file_url": file_url})

    async def _initiate_multipart(self, request: HttpRequest, send: Send) -> None:
        body = await self._json_body(request)
        if isinstance(body, Answer):
            await self._answer(send, body)
            return
        content_type = clean_content_type(body.get("content_type"))
        file_url, upload_id = self._new_multipart(request, body.get("file_name"), content_type)
        await self._json(send, 200, {"upload_url": f"{file_url}/multipart/{upload_id}", "file_url": file_url})

    def _new_multipart(self, request: HttpRequest, original: Any, content_type: str) -> tuple[str, str]:
        self._expire()
        name = stored_name(original, content_type)
        upload_id = secrets.token_hex(16)
        self.multipart[upload_id] = _Multipart(name, content_type, self.now)
        while len(self.multipart) > MAX_PENDING_MULTIPART:
            self._drop_multipart(next(iter(self.multipart)))
        return self.files_base(request) + name, upload_id

    # -- v3.fal.media ----------------------------------------------------------------------
    async def cdn(self, request: HttpRequest, send: Send) -> None:
        route = request.path[len(CDN_PREFIX):].strip("/")
        known = route in ("files/upload", "files/upload/multipart")
        if not await self._admit_post(request, send, known, self._token_auth):
            return
        content_type = clean_content_type(request.header("content-type"))
        original = request.header("x-fal-file-name")
        if route == "files/upload":
            data = await request.body(self.single_cap)
            name = stored_name(original, content_type)
            self._store(name, data, content_type)
            await self._json(send, 200, {"access_url": self.files_base(request) + name})
        else:
            await request.body(JSON_BODY_MAX_BYTES)
            file_url, upload_id = self._new_multipart(request, original or "upload.bin", content_type)
            await self._json(send, 200, {"access_url": file_url, "uploadId": upload_id})

    # -- PUT/POST on /_mock/files/ -------------------------------------------------------------
    async def files(self, request: HttpRequest, send: Send) -> None:
        segments = request.path[len(FILES_PREFIX):].split("/")
        method = request.method
        if method == "OPTIONS":
            await send_bytes(send, 204, b"", _PREFLIGHT)
            return
        name = segments[0]
        if len(segments) == 1 and name:
            if method != "PUT":
                await self._answer(send, fal_errors.method_not_allowed())
            else:
                await self._signed_put(request, send, name)
            return
        if len(segments) == 4 and segments[1] == "multipart":
            upload_id, action = segments[2], segments[3]
            if action == "complete":
                if method != "POST":
                    await self._answer(send, fal_errors.method_not_allowed())
                else:
                    await self._complete(request, send, name, upload_id)
                return
            if action.isdigit():
                if method != "PUT":
                    await self._answer(send, fal_errors.method_not_allowed())
                else:
                    await self._put_part(request, send, name, upload_id, int(action))
                return
        await self._answer(send, fal_errors.path_not_found(request.path))

    async def _signed_put(self, request: HttpRequest, send: Send, name: str) -> None:
        self._expire()
        pending = self.signed.get(name)
        given = request.query.get("signature", "") if request.raw_query else ""
        if pending is None or not secrets.compare_digest(given, pending.secret):
            # like a bad or expired signed GCS URL
            await self._answer(send, fal_errors.detail(403, "Invalid or expired upload URL"))
            return
        data = await request.body(self.single_cap)
        content_type = request.header("content-type")
        content_type = clean_content_type(content_type) if content_type else pending.content_type
        self._store(name, data, content_type)
        # The URL stays usable until it expires (a retried PUT overwrites the same file).
        await self._json(send, 200, {})

    def _find_multipart(self, name: str, upload_id: str) -> _Multipart | None:
        upload = self.multipart.get(upload_id)
        if upload is None or upload.name != name:
            return None
        return upload

    async def _put_part(self, request: HttpRequest, send: Send, name: str, upload_id: str, number: int) -> None:
        self._expire()
        if self._find_multipart(name, upload_id) is None:
            await self._answer(send, fal_errors.detail(404, "Upload not found"))
            return
        if not 1 <= number <= MAX_PART_NUMBER:
            await self._answer(send, fal_errors.bad_request(f"Part number must be between 1 and {MAX_PART_NUMBER}"))
            return
        data = await request.body(min(self.single_cap, MULTIPART_MAX_BYTES))
        etag = '"' + (await asyncio.to_thread(lambda: hashlib.md5(data).hexdigest())) + '"'
        upload = self._find_multipart(name, upload_id)  # again: it may have expired meanwhile
        if upload is None:
            await self._answer(send, fal_errors.detail(404, "Upload not found"))
            return
        old = upload.parts.get(number)
        delta = len(data) - (len(old[0]) if old else 0)
        if upload.size + delta > MULTIPART_MAX_BYTES:
            self._drop_multipart(upload_id)
            await self._answer(send, fal_errors.body_too_large(MULTIPART_MAX_BYTES))
            return
        # Bound all unfinished uploads together: drop the least recently used others first.
        for other in [u for u in self.multipart if u != upload_id]:
            if self.pending_bytes + delta <= MULTIPART_MAX_BYTES:
                break
            self._drop_multipart(other)
        upload.parts[number] = (data, etag)
        upload.size += delta
        self.pending_bytes += delta
        upload.touched = self.now
        self.multipart.move_to_end(upload_id)
        await self._json(send, 200, {"partNumber": number, "etag": etag}, [(b"etag", etag.encode())])

    async def _complete(self, request: HttpRequest, send: Send, name: str, upload_id: str) -> None:
        body = await self._json_body(request)
        if isinstance(body, Answer):
            await self._answer(send, body)
            return
        file_url = self.files_base(request) + name
        if self.completed.get(upload_id) == name:
            await self._json(send, 200, {"access_url": file_url})
            return
        self._expire()
        upload = self._find_multipart(name, upload_id)
        if upload is None:
            await self._answer(send, fal_errors.detail(404, "Upload not found"))
            return
        listed = body.get("parts")
        if not isinstance(listed, list) or not listed:
            await self._answer(send, fal_errors.bad_request("parts must be a non-empty list"))
            return
        chosen: dict[int, bytes] = {}
        for part in listed:
            number = part.get("partNumber") if isinstance(part, dict) else None
            if not isinstance(number, int) or isinstance(number, bool) or number in chosen:
                await self._answer(send, fal_errors.bad_request("Each part needs a distinct integer partNumber"))
                return
            stored = upload.parts.get(number)
            if stored is None:
                await self._answer(send, fal_errors.bad_request(f"Part {number} was not uploaded"))
                return
            etag = part.get("etag")
            if etag is not None and _strip_etag(etag) != _strip_etag(stored[1]):
                await self._answer(send, fal_errors.bad_request(f"Part {number} has a different etag"))
                return
            chosen[number] = stored[0]
        self._drop_multipart(upload_id)
        data = await asyncio.to_thread(lambda: b"".join(chosen[n] for n in sorted(chosen)))
        self._store(name, data, upload.content_type)
        self.completed[upload_id] = name
        while len(self.completed) > MAX_COMPLETED:
            self.completed.popitem(last=False)
        await self._json(send, 200, {"access_url": file_url})


def install(app) -> StorageService:
    """Mount the storage routes on a FalMockApp (REST_PREFIX, CDN_PREFIX, and PUT/POST under FILES_PREFIX).

    The app keeps the service it returns as ``app.uploads`` (tests and the control API may look at it).
    """
    service = StorageService(app)
    app.mount(REST_PREFIX, service.rest)
    app.mount(CDN_PREFIX, service.cdn)
    app.mount(FILES_PREFIX, service.files)  # GET/HEAD of a file stay app.py's
    on_reset = getattr(app.mock, "on_reset", None)
    if on_reset is not None:
        on_reset(service.forget_uploads)
    return service
