"""Recording: one fal call made for real (upstream), written as a cassette.

Where it sits (the design choice of issue 19 point 1): the client talks to the mock exactly
as when it emulates: its submit, polls, status stream, cancel and webhook are the mock's own
queue's.  The upstream call happens where a result is produced (the endpoint contract's
``produce``: the first result GET, a webhook, or a synchronous run): the recorder uploads
the inputs the client uploaded to the mock, submits to the upstream queue, polls its status
with logs until COMPLETED (keeping every distinct state with its time and every log line),
fetches the result and every media file it points to, writes the cassette and answers the
upstream's result.  Forwarding the client's calls one by one instead would map request ids,
status URLs, stream events, cancels and webhook deliveries both ways on every route, and
would record nothing more: the upstream's lifecycle is observed by the recorder's own polls.
The cost: while recording, the client sees the mock's timing profile, and its result GET
waits for the upstream (``--profile instant`` makes the wait the whole of it).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import httpx
import orjson

from mock_server.core import fal_errors
from mock_server.core.answers import Answer
from mock_server.core.files import StoredFile
from mock_server.features.cassettes.matching import input_key, uploads_in
from mock_server.features.cassettes.scrub import Scrubber, scrub_url
from mock_server.features.cassettes.store import MEDIA_NAME_REF, MEDIA_REF, Cassette, CassetteDir, extension_for, sha256

#: fal's hosts (fal_client/client.py: QUEUE_URL_FORMAT "https://queue.fal.run/", RUN_URL_FORMAT
#: "https://fal.run/", REST_URL "https://rest.fal.ai")
FAL_QUEUE = "https://queue.fal.run"
FAL_RUN = "https://fal.run"
FAL_REST = "https://rest.fal.ai"
#: Result headers kept in a cassette (the rest are transport details).
KEPT_HEADERS = ("content-type", "x-fal-billable-units")
POLL_INTERVAL = 0.25  # seconds between the recorder's status polls
TIMING_STEP = 1  # decimals kept of recorded times (seconds): 0.1 s
UPSTREAM_TIMEOUT = 30.0  # seconds for one upstream HTTP call
RECORD_TIMEOUT = 1800.0  # seconds a recorded request may take from submit to COMPLETED


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where recorded calls go: fal's own hosts, or one base URL speaking fal's protocol the way
    fal-mock does (run at URL, queue at URL/queue, storage at URL/_mock/rest)."""

    queue: str = FAL_QUEUE
    run: str = FAL_RUN
    rest: str = FAL_REST

    @classmethod
    def of(cls, url: str | None) -> "Upstream":
        if not url:
            return cls()
        base = url.rstrip("/")
        return cls(queue=base + "/queue", run=base, rest=base + "/_mock/rest")


class RecordingFailed(Exception):
    """The upstream could not be reached or answered something that is not fal's protocol."""


#: ``own_file(url)``: the mock's stored file behind ``url`` (an upload to the mock), else None.
OwnFile = Callable[[str], "StoredFile | None"]


class Recorder:
    """Makes recorded calls to one upstream with one key and writes them into one folder."""

    def __init__(self, cassettes: CassetteDir, upstream: Upstream, key: str | None,
                 poll_interval: float = POLL_INTERVAL) -> None:
        self.cassettes = cassettes
        self.upstream = upstream
        self.key = key
        self.poll_interval = poll_interval
        self._uploaded: dict[str, str] = {}  # sha256 -> the upstream URL of that content

    async def record(self, endpoint_id: str, value: dict[str, Any], normalised: dict[str, Any],
                     own_file: OwnFile, key: str | None = None) -> tuple[Answer, Cassette | None]:
        """Make the call upstream with ``key`` (the caller's own), else the recorder's; the
        answer to give the client, and the cassette written."""
        key = key or self.key
        if not key:
            return fal_errors.request_error(
                401, "fal-mock is recording but has no key for the upstream: call the mock with your own "
                     "fal key, or set FAL_KEY in the environment of `fal-mock serve --record`", "recording_failed"), None
        call = _Call(self, key)
        try:
            async with httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT) as http:
                return await call.record(http, endpoint_id, value, normalised, own_file)
        except (httpx.HTTPError, RecordingFailed, ValueError) as exc:
            where = ""
            if isinstance(exc, httpx.RequestError):
                where = f" ({exc.request.method} {scrub_url(str(exc.request.url))})"
            message = call.scrubber.text(f"{type(exc).__name__}: {exc}{where}")
            return fal_errors.request_error(502, f"fal-mock could not record from the upstream: {message}",
                                            "recording_failed"), None


class _Call:
    """One recorded call: the recorder's steps with one key (scrubbed, with the recorder's, from
    everything written)."""

    def __init__(self, recorder: Recorder, key: str) -> None:
        self.key = key
        self.upstream = recorder.upstream
        self.cassettes = recorder.cassettes
        self.poll_interval = recorder.poll_interval
        self._uploaded = recorder._uploaded
        self.scrubber = Scrubber([key, recorder.key or ""])

    # -- the steps -------------------------------------------------------------------------
    def _auth(self) -> dict[str, str]:
        return {"authorization": f"Key {self.key}"}

    async def record(self, http: httpx.AsyncClient, endpoint_id: str, value: dict[str, Any],
                      normalised: dict[str, Any], own_file: OwnFile) -> tuple[Answer, Cassette | None]:
        sent = await self._with_uploads(http, value, own_file)
        started = time.monotonic()
        submitted = await http.post(f"{self.upstream.queue}/{endpoint_id}", json=sent, headers=self._auth())
        states: list[dict[str, Any]] = []
        logs: list[dict[str, Any]] = []
        if submitted.status_code != 200:  # refused at submit (auth, unknown app ...): answered as is
            result = submitted
        else:
            accepted = submitted.json()
            _note_state(states, accepted, started)
            status_url, response_url = accepted.get("status_url"), accepted.get("response_url")
            if not status_url or not response_url:
                raise RecordingFailed("the upstream's submit answer has no status_url/response_url")
            await self._follow(http, status_url, started, states, logs)
            result = await http.get(response_url, headers=self._auth())
        answer_headers = tuple((name, result.headers[name]) for name in KEPT_HEADERS if name in result.headers)
        # content-type is the answer's own (JSON): only the others travel with it
        answer = Answer(result.status_code, result.content, tuple(h for h in answer_headers if h[0] != "content-type"))
        name = input_key(normalised)
        body, media = await self._media(http, result, name)
        data = {
            "endpoint_id": endpoint_id,
            "name": name,
            "input": normalised,
            "states": states,
            "logs": logs,
            "result": {"status": result.status_code, "headers": dict(answer_headers), **body},
            "media": [entry for entry, _ in media],
            "uploads": sorted(set(uploads_in(normalised))),
            "volatile": {"x-fal-request-id": result.headers.get("x-fal-request-id")
                         or submitted.headers.get("x-fal-request-id")},
        }
        cassette = self.cassettes.write(self.scrubber.value(data),
                                        [(entry["file"], content) for entry, content in media])
        return answer, cassette

    async def _with_uploads(self, http: httpx.AsyncClient, value: Any, own_file: OwnFile) -> Any:
        """The input with every file uploaded to the mock uploaded upstream too, its URL replaced
        by the one the upstream gave (each content once per recorder)."""
        if isinstance(value, dict):
            return {k: await self._with_uploads(http, v, own_file) for k, v in value.items()}
        if isinstance(value, list):
            return [await self._with_uploads(http, v, own_file) for v in value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            stored = own_file(value)
            if stored is not None:
                return await self._upload(http, stored)
        return value

    async def _upload(self, http: httpx.AsyncClient, stored: StoredFile) -> str:
        digest = sha256(stored.data)
        url = self._uploaded.get(digest)
        if url is None:
            # fal_client's _upload_via_storage: initiate, then PUT the bytes to the signed URL
            started = await http.post(f"{self.upstream.rest}/storage/upload/initiate?storage_type=fal-cdn-v3",
                                      json={"content_type": stored.content_type,
                                            "file_name": "upload" + extension_for(stored.content_type)},
                                      headers=self._auth())
            if started.status_code != 200:
                raise RecordingFailed(f"upload initiate answered {started.status_code}: {started.text[:200]}")
            target = started.json()
            put = await http.put(target["upload_url"], content=stored.data,
                                 headers={"content-type": stored.content_type})
            if put.status_code not in (200, 201, 204):
                raise RecordingFailed(f"upload PUT answered {put.status_code}")
            url = self._uploaded[digest] = target["file_url"]
            self.cassettes.write_upload(stored.data, stored.content_type, scrub_url(self.scrubber.text(url)))
        return url

    async def _follow(self, http: httpx.AsyncClient, status_url: str, started: float,
                      states: list[dict[str, Any]], logs: list[dict[str, Any]]) -> None:
        """Poll the upstream's status (with logs) until COMPLETED, noting each distinct state."""
        deadline = started + RECORD_TIMEOUT
        first: list[float] = []
        while True:
            polled = await http.get(status_url, params={"logs": "1"}, headers=self._auth())
            if polled.status_code not in (200, 202):
                raise RecordingFailed(f"status poll answered {polled.status_code}: {polled.text[:200]}")
            status = polled.json()
            _note_state(states, status, started)
            _note_logs(logs, status.get("logs") or [], first)
            if status.get("status") == "COMPLETED":
                return
            if time.monotonic() > deadline:
                raise RecordingFailed(f"the upstream request did not complete in {RECORD_TIMEOUT:.0f} s")
            await asyncio.sleep(self.poll_interval)

    async def _media(self, http: httpx.AsyncClient, result: httpx.Response,
                     name: str) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
        """The result body as kept (media URLs replaced by references to the files beside the
        cassette) and the media files downloaded, in the order they appear."""
        try:
            body = orjson.loads(result.content)
        except orjson.JSONDecodeError:
            return {"text": result.text}, []
        if not 200 <= result.status_code < 300:  # an error's URLs are documentation links, not media
            return {"body": body}, []
        media: list[tuple[dict[str, Any], bytes]] = []
        seen: dict[str, str] = {}

        async def walk(item: Any) -> Any:
            if isinstance(item, dict):
                return {k: await walk(v) for k, v in item.items()}
            if isinstance(item, list):
                return [await walk(v) for v in item]
            if isinstance(item, str) and item.startswith(("http://", "https://")):
                if item in seen:
                    return seen[item]
                try:
                    got = await http.get(item)
                except httpx.HTTPError:
                    got = None
                if got is None or got.status_code != 200:
                    return item  # not a file the result hands out: kept as a plain (scrubbed) URL
                content_type = got.headers.get("content-type", "application/octet-stream").split(";")[0]
                file_name = f"{name}-{len(media)}{extension_for(content_type)}"
                media.append(({"file": file_name, "content_type": content_type, "sha256": sha256(got.content),
                               "size": len(got.content)}, got.content))
                seen[item] = MEDIA_REF + file_name
                return seen[item]
            return item

        kept = await walk(body)
        # the names fal gave the files (``file_name``: random on every run) name them too
        names = {url.rsplit("/", 1)[-1].split("?")[0]: ref for url, ref in seen.items() if ref.startswith(MEDIA_REF)}
        return {"body": _renamed(kept, {n: MEDIA_NAME_REF + r[len(MEDIA_REF):] for n, r in names.items() if n})}, media


def _renamed(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _renamed(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    if isinstance(value, str):
        return names.get(value, value)
    return value


def _offset(started: float) -> float:
    return round(time.monotonic() - started, TIMING_STEP)


def _note_state(states: list[dict[str, Any]], status: dict[str, Any], started: float) -> None:
    state = {"status": status.get("status")}
    if state["status"] == "IN_QUEUE" and status.get("queue_position") is not None:
        state["queue_position"] = status["queue_position"]
    last = states[-1] if states else None
    if last is None or {k: v for k, v in last.items() if k != "at"} != state:
        states.append({**state, "at": _offset(started)})


def _note_logs(logs: list[dict[str, Any]], lines: list[dict[str, Any]], first: list[float]) -> None:
    """Add the lines not seen yet; their times are relative to the first line's (fal's own
    timestamps, so the recorder's poll rate does not show; ``first`` holds that stamp)."""
    for line in lines[len(logs):]:
        stamp = _stamp(line.get("timestamp"))
        if stamp is not None and not first:
            first.append(stamp)
        entry = {"message": line.get("message", ""),
                 "at": round(stamp - first[0], TIMING_STEP) if stamp is not None and first else 0.0}
        if line.get("level"):
            entry["level"] = line["level"]
        logs.append(entry)


def _stamp(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None
