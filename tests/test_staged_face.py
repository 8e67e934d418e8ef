"""The served application in stages (mock_server.server.staged): the fast lane answers as soon
as the port is open; calls that need the FastAPI face wait for its build, then go on; the
face's own lifespan (the emulator's start and stop) runs once it is built."""
from __future__ import annotations

import asyncio
import http.client
import json
import threading

from mock_server.emulator import FalMock
from mock_server.server._uvicorn_compat import DrivenServer
from mock_server.server.serving import uvicorn_config
from mock_server.server.staged import StagedFace
from mock_server.settings import Settings

SUBMIT = "/queue/fal-ai/wan-25-preview/image-to-image"
BODY = json.dumps({"prompt": "x", "image_urls": ["https://example.com/a.png"]})
HEADERS = {"Authorization": "Key a:b", "Content-Type": "application/json"}


class Served:
    """A StagedFace on uvicorn on a thread of its own, its face NOT built until asked."""

    def __init__(self, face: StagedFace) -> None:
        self.face = face
        self.loop = asyncio.new_event_loop()
        self.driven = DrivenServer(uvicorn_config(face, Settings(port=0), log_level="error"))
        self.port = None
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.port = self.loop.run_until_complete(self.driven.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10) and self.port

    def call(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request(method, path, body=body, headers=HEADERS)
        response = conn.getresponse()
        return response.status, response.read()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.driven.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_lane_answers_before_the_face_is_built_and_other_calls_wait_for_it() -> None:
    emulator = FalMock(Settings(profile="instant"))
    stops = record_stops(emulator)
    served = Served(StagedFace(emulator))
    try:
        status, body = served.call("POST", SUBMIT, BODY)  # no face yet: the lane answers
        assert status == 200 and served.face.face is None
        request_id = json.loads(body)["request_id"]
        waiting: list = []
        health = threading.Thread(target=lambda: waiting.append(served.call("GET", "/_mock/health")))
        health.start()
        health.join(0.3)
        assert health.is_alive() and not waiting  # waits for the face ...
        assert emulator.driver.loop is None  # ... and the face's lifespan has not run
        served.face.build()
        health.join(10)
        assert waiting and waiting[0][0] == 200  # ... then is answered
        status, body = served.call("GET", f"/queue/fal-ai/wan-25-preview/requests/{request_id}")
        assert status == 200 and json.loads(body)["images"]
        status, _ = served.call("PUT", f"/queue/fal-ai/wan-25-preview/requests/{request_id}/cancel")
        assert status == 400  # already completed: fal's answer, from the face
        assert emulator.driver.loop is served.loop  # the face's lifespan started the emulator
    finally:
        served.stop()
    assert stops == [1]  # and stopped it


def test_a_face_that_fails_to_build_answers_500_and_the_server_still_stops() -> None:
    emulator = FalMock(Settings(profile="instant"))
    face = StagedFace(emulator, lane=False)

    def broken(*args, **kwargs):
        raise ImportError("no fastapi here")

    served = Served(face)
    try:
        import mock_server.web.app as web_app

        real, web_app.create_app = web_app.create_app, broken
        try:
            face.build()
        finally:
            web_app.create_app = real
        status, _ = served.call("GET", "/_mock/health")
        assert status == 500
    finally:
        served.stop()


def test_stopping_before_the_face_is_built_waits_for_it_and_runs_its_shutdown() -> None:
    emulator = FalMock(Settings(profile="instant"))
    stops = record_stops(emulator)
    face = StagedFace(emulator)
    served = Served(face)
    threading.Timer(0.2, face.build).start()
    served.stop()  # returns once the face built, started and stopped
    assert face.face is not None and stops == [1]


def record_stops(emulator: FalMock) -> list[int]:
    """Counts the emulator's stops (the face's lifespan shutdown)."""
    stops: list[int] = []
    stop = emulator.stop

    async def counted() -> None:
        stops.append(1)
        await stop()

    emulator.stop = counted
    return stops
