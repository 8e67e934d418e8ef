"""The dashboard shows a result's videos, sounds and 3D files (issue 16.5): a still of each
video (its first frame, served by the mock), an audio player, a link for a 3D file; only the
mock's own files, never another URL.  Checked on the server-rendered HTML over HTTP, and in
Chromium (the page's CSP lets the players load; the video plays there)."""
from __future__ import annotations

import functools
import io
import re

import httpx
import orjson
import pytest
from PIL import Image

from mock_server.core.answers import Answer
from mock_server.core.endpoint import Endpoint, EndpointEnv, Parsed
from mock_server.emulator import FalMock
from mock_server.endpoints.fal_app.media import (
    audio_facts, glb_facts, render_glb, render_mp4, render_wav, video_facts,
)
from mock_server.endpoints.fal_app.rendering import palette_rgb
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings
from test_dashboard import CHROMIUM_ARGS, WAIT_MS, chromium_path

KEY = {"Authorization": "Key test-id:test-secret"}
REMOTE_VIDEO = "https://example.com/elsewhere.mp4"


class MediaEndpoint(Endpoint):
    """``test-owner/media``: answers a video, a sound, a 3D model (twice) and a remote video."""

    endpoint_id = "test-owner/media"

    def parse(self, body: bytes) -> Parsed | Answer:
        return Parsed(orjson.loads(body or b"{}"))

    async def produce(self, params, request_id: str, env: EndpointEnv) -> Answer:
        def stored(name: str, facts, recipe) -> dict:
            data = recipe()
            env.files.add_rendered(name, recipe, facts.content_type, data)
            return facts.sized(data).output(env.file_url(name))

        video = stored(f"{request_id}.mp4", video_facts(640, 360, 24, 1, f"{request_id}.mp4"),
                       functools.partial(render_mp4, 640, 360, 24, 1, 5, ("a storm",)))
        audio = stored(f"{request_id}.wav", audio_facts(1, file_name=f"{request_id}.wav"), functools.partial(render_wav, 1, 5))
        model = stored(f"{request_id}.glb", glb_facts(f"{request_id}.glb"), functools.partial(render_glb, 5, "a chair"))
        result = {"video": video, "audio_file": audio, "model_glb": model, "model_urls": {"glb": model},
                  "elsewhere": {"url": REMOTE_VIDEO, "content_type": "video/mp4"}, "seed": 5}
        return Answer(200, orjson.dumps(result))


@pytest.fixture(scope="module")
def served():
    mock = FalMock(Settings(profile="instant"), endpoints=[MediaEndpoint()])
    server = BackgroundServer(mock)
    server.start()
    with httpx.Client(base_url=server.url, headers=KEY, timeout=30) as http:
        submitted = http.post("/queue/test-owner/media", json={}).json()
        result = http.get(submitted["response_url"]).json()
        yield server, http, submitted["request_id"], result
    server.stop()


def file_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_the_detail_page_has_a_player_for_each_own_medium_and_names_the_remote_one(served) -> None:
    server, http, rid, result = served
    page = http.get(f"/_mock/ui/requests/{rid}").text
    page = page[page.index("<h2>Media</h2>"):]  # (the row above it shows them small, as the list does)
    video, audio, model = (file_name(result[k]["url"]) for k in ("video", "audio_file", "model_glb"))
    assert f'<video controls preload="none" poster="/_mock/ui/poster/{video}" src="/_mock/files/{video}"' in page
    assert f'<audio controls preload="none" src="/_mock/files/{audio}"></audio>' in page
    assert page.count(f'<a class="file" href="/_mock/files/{model}" download>') == 2  # model_glb, model_urls.glb
    assert "video: not a mock file" in page and f'src="{REMOTE_VIDEO}"' not in page
    assert "video/mp4 · 640x360 · 1 s" in page


def test_the_list_row_shows_a_still_of_the_video(served) -> None:
    server, http, rid, result = served
    page = http.get("/_mock/").text
    row = page[page.index(f'id="r-{rid}"'):]
    video = file_name(result["video"]["url"])
    assert re.search(rf'<img class="thumb still" src="/_mock/ui/poster/{re.escape(video)}"', row)


def test_the_still_is_the_videos_first_frame_scaled_down(served) -> None:
    server, http, rid, result = served
    answer = http.get(f"/_mock/ui/poster/{file_name(result['video']['url'])}")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    still = Image.open(io.BytesIO(answer.content))
    assert still.size == (384, 216)  # 640x360, long side 384
    # the same drawing as the video: the corner is one of seed 5's background stripe colours
    corner = still.convert("RGB").getpixel((1, 1))
    assert min(sum(abs(a - b) for a, b in zip(corner, c)) for c in palette_rgb(5)[222:224]) < 40


@pytest.mark.parametrize("name", ["nothing.mp4", "..%2Fsecret"])
def test_a_still_of_no_stored_video_is_fals_404(served, name) -> None:
    server, http, rid, result = served
    assert http.get(f"/_mock/ui/poster/{name}").status_code == 404
    audio = file_name(result["audio_file"]["url"])
    assert http.get(f"/_mock/ui/poster/{audio}").status_code == 404  # a sound has no still
    assert http.post(f"/_mock/ui/poster/{audio}").status_code == 405


def test_in_chromium_the_still_loads_and_the_video_and_sound_play_under_the_pages_csp(served) -> None:
    server, http, rid, result = served
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(f"{server.url}/_mock/ui/requests/{rid}")
            ready = page.evaluate("""async () => {
                const wait = (el) => new Promise((ok) => {
                    if (el.readyState >= 1) return ok(el.duration);
                    el.addEventListener('loadedmetadata', () => ok(el.duration));
                    el.addEventListener('error', () => ok('error ' + (el.error && el.error.code)));
                    el.preload = 'metadata'; el.load(); });
                return [await wait(document.querySelector('video')), await wait(document.querySelector('audio'))];
            }""")
            assert ready == [1, 1]
            page.goto(f"{server.url}/_mock/")
            page.wait_for_function("() => { const i = document.querySelector('img.still');"
                                   " return i && i.complete && i.naturalWidth === 384; }")
            assert not [text for text in console if "Content Security Policy" in text]
        finally:
            browser.close()
