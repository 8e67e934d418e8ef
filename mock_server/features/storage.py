"""Offline storage uploads (``fal_client.upload*``, ``fal.storage.upload``): the upload
sessions behind the stand-ins for fal's storage hosts (routes: :mod:`mock_server.web.routers.storage`).

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

One budget bounds everything upload-related the mock keeps (issue 20.8): the FileStore's
``upload_bytes`` (512 MiB) covers stored uploads, unfinished multipart parts and the
bodies of uploads being received, together.  A body is counted as it arrives
(:meth:`UploadSessions.receiving`); when the bodies in flight (which cannot be dropped)
would pass the budget, it is refused with fal's 413; otherwise the oldest stored uploads,
then the least recently used other unfinished multipart uploads, are dropped to make room.
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

from mock_server.core import fal_errors
from mock_server.core.answers import Answer
from mock_server.core.clock import Clock
from mock_server.core.files import FileStore
from mock_server.settings import Settings

__all__ = [
    "CDN_TOKEN_TTL_SECONDS",
    "MAX_PENDING_MULTIPART",
    "MAX_PENDING_SIGNED",
    "MULTIPART_MAX_BYTES",
    "SINGLE_UPLOAD_MAX_BYTES",
    "UPLOAD_TTL_SECONDS",
    "STORAGE_TYPES",
    "Receiving",
    "UploadSessions",
    "clean_content_type",
    "stored_name",
]

#: Lifetime of a CDN token (fal_client caches it until ``expires_at``).
CDN_TOKEN_TTL_SECONDS = 3600
#: Tokens remembered at once (oldest forgotten first).
MAX_TOKENS = 10_000
#: A single-request upload may be this large even when ``max_body_bytes`` is smaller:
#: fal_client sends up to 100 MiB in one request, fal-js up to 90 MiB.
SINGLE_UPLOAD_MAX_BYTES = 100 * 1024 * 1024
#: One multipart upload, and all unfinished ones together, hold at most this much (and with
#: stored uploads and bodies in flight, at most the FileStore's ``upload_bytes``).
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

#: The ``?storage_type=`` values the REST routes accept.
STORAGE_TYPES = frozenset(("fal-cdn-v3", "fal-cdn", "gcs"))
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[ -~]*)?$")
_NAME_MAX = 120
_OCTET = "application/octet-stream"


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


#: What a session call gives: the JSON payload of its 200, or fal's error answer.
Outcome = dict[str, Any] | Answer


class UploadSessions:
    """The upload routes' state: issued CDN tokens, signed PUT URLs and unfinished multipart
    uploads; finished uploads land in the :class:`FileStore`.

    Reachable as ``FalMock.uploads``.  All state is touched only on the server's event loop
    (no locks needed); every collection is bounded by count and expires by the mock's clock.
    ``files_base`` arguments are ``{scheme}://{host}/_mock/files/`` as the caller reached the mock.
    """

    def __init__(self, clock: Clock, files: FileStore, settings: Callable[[], Settings]) -> None:
        self.clock = clock
        self.files = files
        self._settings = settings
        self.tokens: OrderedDict[str, float] = OrderedDict()  # token -> expires_at
        #: token -> the namespace of the key it was issued to (docs/namespaces.md): the CDN
        #: calls carry only the token
        self.token_namespaces: dict[str, str] = {}
        self.signed: OrderedDict[str, _Signed] = OrderedDict()  # file name -> pending PUT
        self.multipart: OrderedDict[str, _Multipart] = OrderedDict()  # uploadId -> upload
        self.completed: OrderedDict[str, str] = OrderedDict()  # uploadId -> file name
        self.pending_bytes = 0
        self.in_flight = 0  # bytes of upload bodies being received (or joined)

    # -- the budget -----------------------------------------------------------------------
    @property
    def budget(self) -> int:
        """Everything upload-related kept at once (stored, unfinished, in flight), in bytes."""
        return self.files.upload_bytes

    @property
    def kept_bytes(self) -> int:
        return self.files.uploaded_bytes + self.pending_bytes + self.in_flight

    def receiving(self) -> "Receiving":
        """Count an upload body as it arrives; ``release()`` it once kept or refused."""
        return Receiving(self)

    def _make_room(self, keep_upload: str | None = None, keep_stored: int = 0) -> None:
        """Drop stored uploads (but the ``keep_stored`` newest), then unfinished ones (but
        ``keep_upload``), until the budget holds."""
        self.files.trim_uploads(max(0, self.budget - self.pending_bytes - self.in_flight), keep_stored)
        for other in [u for u in self.multipart if u != keep_upload]:
            if self.kept_bytes <= self.budget:
                break
            self._drop_multipart(other)

    # -- limits and checks --------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.clock.now()

    @property
    def single_cap(self) -> int:
        """The largest single-request upload (a CDN upload, a signed PUT)."""
        return max(self._settings().max_body_bytes, SINGLE_UPLOAD_MAX_BYTES)

    @property
    def part_cap(self) -> int:
        """The largest multipart part."""
        return min(self.single_cap, MULTIPART_MAX_BYTES)

    def token_denial(self, authorization: str | None) -> Answer | None:
        """A CDN call must carry ``Authorization: Bearer <token>`` of a live token issued here."""
        if not self._settings().auth:
            return None
        if not authorization:
            return fal_errors.unauthorized("Missing authorization header")
        scheme, _, token = authorization.partition(" ")
        expires_at = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires_at is None:
            return fal_errors.unauthorized("Invalid token")
        if self.now >= expires_at:
            self.tokens.pop(token.strip(), None)
            return fal_errors.unauthorized("Token expired")
        return None

    @staticmethod
    def storage_type_denial(kind: str | None) -> Answer | None:
        """``?storage_type=`` must be one fal knows (absent is fine)."""
        if kind is None or kind in STORAGE_TYPES:
            return None
        return fal_errors.bad_request(f"Unsupported storage_type {kind!r}")

    def _expire(self) -> None:
        now = self.now
        for token in [t for t, exp in self.tokens.items() if now >= exp]:
            del self.tokens[token]
            self.token_namespaces.pop(token, None)
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
        self.pending_bytes = 0  # bodies in flight stay counted until their routes release them

    def _store(self, name: str, data: bytes, content_type: str) -> None:
        self.files.add_upload(name, data, content_type)
        self._make_room(keep_stored=1)  # never the file just stored

    # -- rest.fal.ai -----------------------------------------------------------------------
    def issue_token(self, cdn_base: str, namespace: str | None = None) -> Outcome:
        """A CDN token ``{token, token_type, base_url, expires_at}``; ``cdn_base`` is the CDN
        stand-in's URL as the caller reached the mock; ``namespace``: the caller's."""
        self._expire()
        token = secrets.token_urlsafe(32)
        expires_at = float(int(self.now + CDN_TOKEN_TTL_SECONDS))
        self.tokens[token] = expires_at
        if namespace is not None:
            self.token_namespaces[token] = namespace
        while len(self.tokens) > MAX_TOKENS:
            self.token_namespaces.pop(self.tokens.popitem(last=False)[0], None)
        return {"token": token, "token_type": "Bearer", "base_url": cdn_base, "expires_at": _iso(expires_at)}

    def initiate(self, body: dict[str, Any], files_base: str) -> Outcome:
        """A signed single upload: ``{upload_url, file_url}``; the PUT to ``upload_url`` stores it."""
        content_type = clean_content_type(body.get("content_type"))
        name = stored_name(body.get("file_name"), content_type)
        self._expire()
        secret = secrets.token_hex(16)
        self.signed[name] = _Signed(secret, content_type, self.now + UPLOAD_TTL_SECONDS)
        while len(self.signed) > MAX_PENDING_SIGNED:
            self.signed.popitem(last=False)
        file_url = files_base + name
        return {"upload_url": f"{file_url}?signature={secret}", "file_url": file_url}

    def initiate_multipart(self, body: dict[str, Any], files_base: str) -> Outcome:
        content_type = clean_content_type(body.get("content_type"))
        file_url, upload_id = self._new_multipart(files_base, body.get("file_name"), content_type)
        return {"upload_url": f"{file_url}/multipart/{upload_id}", "file_url": file_url}

    def _new_multipart(self, files_base: str, original: Any, content_type: str) -> tuple[str, str]:
        self._expire()
        name = stored_name(original, content_type)
        upload_id = secrets.token_hex(16)
        self.multipart[upload_id] = _Multipart(name, content_type, self.now)
        while len(self.multipart) > MAX_PENDING_MULTIPART:
            self._drop_multipart(next(iter(self.multipart)))
        return files_base + name, upload_id

    # -- v3.fal.media ----------------------------------------------------------------------
    def cdn_upload(self, data: bytes, content_type: str | None, original: str | None, files_base: str) -> Outcome:
        """``POST files/upload``: the bytes, stored at once -> ``{access_url}``."""
        content_type = clean_content_type(content_type)
        name = stored_name(original, content_type)
        self._store(name, data, content_type)
        return {"access_url": files_base + name}

    def cdn_multipart(self, content_type: str | None, original: str | None, files_base: str) -> Outcome:
        """``POST files/upload/multipart`` -> ``{access_url, uploadId}``."""
        file_url, upload_id = self._new_multipart(files_base, original or "upload.bin", clean_content_type(content_type))
        return {"access_url": file_url, "uploadId": upload_id}

    # -- PUT/POST on /_mock/files/ -------------------------------------------------------------
    def signed_put_denial(self, name: str, signature: str) -> Answer | None:
        """Whether a signed PUT may store ``name`` (checked before its body is read)."""
        self._expire()
        pending = self.signed.get(name)
        # as bytes: compare_digest refuses str with non-ASCII characters (a 500, issue 20.13)
        if pending is None or not secrets.compare_digest(signature.encode("utf-8", "surrogatepass"),
                                                         pending.secret.encode()):
            # like a bad or expired signed GCS URL
            return fal_errors.detail(403, "Invalid or expired upload URL")
        return None

    def signed_put(self, name: str, data: bytes, content_type: str | None) -> Outcome:
        """Store a signed PUT's bytes (after :meth:`signed_put_denial`).  The URL stays usable
        until it expires (a retried PUT overwrites the same file)."""
        pending = self.signed.get(name)
        if pending is None:  # expired or reset while the body came in
            return fal_errors.detail(403, "Invalid or expired upload URL")
        content_type = clean_content_type(content_type) if content_type else pending.content_type
        self._store(name, data, content_type)
        return {}

    def _find_multipart(self, name: str, upload_id: str) -> _Multipart | None:
        upload = self.multipart.get(upload_id)
        if upload is None or upload.name != name:
            return None
        return upload

    def part_denial(self, name: str, upload_id: str, number: int) -> Answer | None:
        """Whether part ``number`` of an upload may be sent (checked before its body is read)."""
        self._expire()
        if self._find_multipart(name, upload_id) is None:
            return fal_errors.detail(404, "Upload not found")
        if not 1 <= number <= MAX_PART_NUMBER:
            return fal_errors.bad_request(f"Part number must be between 1 and {MAX_PART_NUMBER}")
        return None

    async def put_part(self, name: str, upload_id: str, number: int, data: bytes,
                       received: "Receiving | None" = None) -> Outcome:
        """Keep part ``number`` -> ``{partNumber, etag}`` (S3's quoted MD5 etag).  ``received``
        (the body's count) is released as the part joins the unfinished upload."""
        etag = '"' + (await asyncio.to_thread(lambda: hashlib.md5(data).hexdigest())) + '"'
        upload = self._find_multipart(name, upload_id)  # again: it may have expired meanwhile
        if upload is None:
            return fal_errors.detail(404, "Upload not found")
        old = upload.parts.get(number)
        delta = len(data) - (len(old[0]) if old else 0)
        ceiling = min(MULTIPART_MAX_BYTES, self.budget)
        if upload.size + delta > ceiling:
            self._drop_multipart(upload_id)
            return fal_errors.body_too_large(ceiling)
        # Bound all unfinished uploads together: drop the least recently used others first.
        for other in [u for u in self.multipart if u != upload_id]:
            if self.pending_bytes + delta <= MULTIPART_MAX_BYTES:
                break
            self._drop_multipart(other)
        if received is not None:
            received.release()
        upload.parts[number] = (data, etag)
        upload.size += delta
        self.pending_bytes += delta
        self._make_room(keep_upload=upload_id)
        upload.touched = self.now
        self.multipart.move_to_end(upload_id)
        return {"partNumber": number, "etag": etag}

    async def complete(self, name: str, upload_id: str, body: dict[str, Any], files_base: str) -> Outcome:
        """Join the listed parts into the file -> ``{access_url}`` (again for a retried complete)."""
        file_url = files_base + name
        if self.completed.get(upload_id) == name:
            return {"access_url": file_url}
        self._expire()
        upload = self._find_multipart(name, upload_id)
        if upload is None:
            return fal_errors.detail(404, "Upload not found")
        listed = body.get("parts")
        if not isinstance(listed, list) or not listed:
            return fal_errors.bad_request("parts must be a non-empty list")
        chosen: dict[int, bytes] = {}
        for part in listed:
            number = part.get("partNumber") if isinstance(part, dict) else None
            if not isinstance(number, int) or isinstance(number, bool) or number in chosen:
                return fal_errors.bad_request("Each part needs a distinct integer partNumber")
            stored = upload.parts.get(number)
            if stored is None:
                return fal_errors.bad_request(f"Part {number} was not uploaded")
            etag = part.get("etag")
            if etag is not None and _strip_etag(etag) != _strip_etag(stored[1]):
                return fal_errors.bad_request(f"Part {number} has a different etag")
            chosen[number] = stored[0]
        self._drop_multipart(upload_id)
        self.in_flight += upload.size  # the parts, then the joined file, until it is stored
        try:
            data = await asyncio.to_thread(lambda: b"".join(chosen[n] for n in sorted(chosen)))
        finally:
            self.in_flight -= upload.size
        self._store(name, data, upload.content_type)
        self.completed[upload_id] = name
        while len(self.completed) > MAX_COMPLETED:
            self.completed.popitem(last=False)
        return {"access_url": file_url}


class Receiving:
    """The count of one upload body being received (see the module doc): ``add`` each chunk
    (False: over the budget, answer 413), ``release`` when the bytes are kept or dropped."""

    __slots__ = ("sessions", "held")

    def __init__(self, sessions: UploadSessions) -> None:
        self.sessions = sessions
        self.held = 0

    def add(self, size: int) -> bool:
        sessions = self.sessions
        if sessions.in_flight + size > sessions.budget:
            return False  # bodies in flight cannot be dropped to make room
        sessions.in_flight += size
        self.held += size
        sessions._make_room()
        if sessions.kept_bytes > sessions.budget:
            sessions.in_flight -= size
            self.held -= size
            return False
        return True

    def release(self) -> None:
        self.sessions.in_flight -= self.held
        self.held = 0
