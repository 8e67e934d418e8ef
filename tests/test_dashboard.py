"""The dashboard at /_mock/ (issue 9), in a real Chromium driven by Playwright.

Needs Debian's ``chromium`` package (``apt-get install -y chromium``; or point
``FAL_MOCK_CHROMIUM`` at another Chromium binary) and the Python ``playwright`` package
(``pip install -e '.[test]'``); Playwright's own browser download is never used.  A
missing browser or package FAILS these tests with a message saying what to install.

The server runs in this process (BackgroundServer, ``default`` profile, frozen clock), the
requests go through the real ``fal_client``; nothing sleeps: Playwright waits for the DOM.
"""
from __future__ import annotations

import base64
import io
import os
import re
import shutil

import httpx
import pytest

from mock_server.features import dashboard
from mock_server.server.background import BackgroundServer
from mock_server.emulator import FalMock
from mock_server.pytest_plugin import FalMockFixture, _wire_fal_client
from mock_server.settings import Settings

APP = "fal-ai/wan-25-preview/image-to-image"
REMOTE = "https://example.com/remote-input.png"
WAIT_MS = 10_000
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("FAL_MOCK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Chromium is missing: the dashboard's browser tests need Debian's chromium package "
                    "(apt-get install -y chromium) or FAL_MOCK_CHROMIUM=/path/to/chromium", pytrace=False)
    return path


def png_data_uri(size: int = 400, color=(200, 40, 40), noise: bool = False) -> str:
    """A PNG as a data URI: a flat colour compresses to ~1 KB, noise to ~size² x 3 bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3)) if noise else Image.new("RGB", (size, size), color)
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    mock = FalMock(Settings(profile="default", speed=1.0))
    background = BackgroundServer(mock)
    background.start()
    yield background
    background.stop()


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing: pip install -e '.[test]' "
                    "(never run `playwright install`: the tests use the system Chromium)", pytrace=False)
    with sync_playwright() as playwright:
        # launch() gives every run a fresh temporary user-data-dir
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def mock(server, monkeypatch):
    """The server reset, its clock frozen, and fal_client pointed at it."""
    server.call(server.mock.reset)
    server.call(server.mock.clock.freeze)
    fixture = FalMockFixture(server)
    _wire_fal_client(fixture, monkeypatch)
    yield fixture
    server.call(server.mock.reset)


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.dialogs = []  # type: ignore[attr-defined]
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.requested = []  # type: ignore[attr-defined]
    page.on("request", lambda request: page.requested.append(request.url))
    yield page
    context.close()
    assert not page.errors, f"JavaScript errors on the page: {page.errors}"


def open_live(page, server, path: str = "/_mock/") -> None:
    """Open a dashboard page and wait until its event stream is connected."""
    page.goto(server.url + path)
    page.wait_for_selector("#live.on")


def submit(prompt: str = "a lighthouse in a storm", image_urls=None, **more) -> str:
    import fal_client

    handle = fal_client.submit(APP, {"prompt": prompt, "image_urls": image_urls or [REMOTE], **more})
    return handle.request_id


def result(request_id: str) -> dict:
    import fal_client

    return fal_client.result(APP, request_id)


def expect_text(page, selector: str, pattern: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_have_text(re.compile(pattern), timeout=WAIT_MS)


def wait_images_loaded(page, selector: str, count: int) -> list[int]:
    """Wait until ``count`` images match and all have loaded; returns their natural widths."""
    page.wait_for_function(
        """([sel, n]) => { const imgs = [...document.querySelectorAll(sel)];
             return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=[selector, count], timeout=WAIT_MS)
    return page.eval_on_selector_all(selector, "imgs => imgs.map(i => i.naturalWidth)")


# -- browser tests -------------------------------------------------------------------------
def test_page_lists_submits_and_a_row_turns_completed_without_reload(page, server, mock):
    open_live(page, server)
    page.evaluate("window.__sameDocument = true")
    ids = [submit(f"request {i}", seed=i) for i in range(3)]
    for rid in ids:  # rows appear live, newest first
        expect_text(page, f"#r-{rid} .badge", "IN_QUEUE")
    order = page.eval_on_selector_all("#rows .row", "rows => rows.map(r => r.dataset.key)")
    assert order == list(reversed(ids))
    assert page.inner_text(f"#r-{ids[0]} .c-key") == "Key fal-mock:***"
    assert "1 planned" in page.inner_text(f"#r-{ids[0]} .c-images")  # before the result: the plan

    mock.clock.advance(30)  # the frozen clock, moved from this thread: no request is polled
    for rid in ids:
        expect_text(page, f"#r-{rid} .badge", "^COMPLETED$")
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert page.locator("#rows img.out").count() == 0  # no output until the result exists

    result(ids[0])  # the first result GET produces the images
    widths = wait_images_loaded(page, f"#r-{ids[0]} img.out", 1)
    assert widths == [512]  # square preset
    assert re.search(r"submitted.*started.*finished", page.inner_text(f"#r-{ids[0]} .c-times"), re.S)


def test_thumbnails_come_from_the_mock_only_and_the_detail_view_shows_the_request(page, server, mock):
    small = png_data_uri(400, (20, 120, 200))  # inlined in the page
    large = png_data_uri(420, noise=True)  # too big to inline: re-served by the dashboard
    assert len(small) <= dashboard.INLINE_MAX < len(large)
    rid = submit("two inputs", image_urls=[small, large, REMOTE], num_images=2, seed=7)
    mock.clock.advance(30)
    output = result(rid)
    open_live(page, server)

    assert wait_images_loaded(page, f"#r-{rid} img.in", 2) == [400, 420]
    assert wait_images_loaded(page, f"#r-{rid} img.out", 2) == [512, 512]
    captions = page.eval_on_selector_all(f"#r-{rid} .ins figcaption", "els => els.map(e => e.textContent)")
    assert captions == ["used", "used", "ignored"]
    remote_tile = page.inner_text(f"#r-{rid} .remote")
    assert "example.com" in remote_tile
    assert not [url for url in page.requested if not url.startswith(server.url) and not url.startswith("data:")]
    srcs = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.getAttribute('src'))")
    assert all(src.startswith(("/_mock/", "data:")) for src in srcs), srcs

    page.click(f"#r-{rid} a.rid")
    page.wait_for_url(f"**/_mock/ui/requests/{rid}")
    text = page.inner_text("#detail")
    assert '"prompt": "two inputs"' in text and '"num_images": 2' in text
    assert "Key fal-mock:***" in text and "secret" not in text
    assert output["images"][0]["file_name"] in text  # the result answer
    assert "Result answer: HTTP 200" in text
    # a full-size output image is one click away
    with page.context.expect_page() as opened:
        page.locator("#detail section img.out").first.click()
    full = opened.value
    full.wait_for_load_state()
    assert full.evaluate("document.images[0].naturalWidth") == 512


def test_fail_next_makes_the_next_request_fail_visibly(page, server, mock):
    import fal_client

    open_live(page, server)
    page.select_option("#fail-on", "submit")
    page.select_option("#fail-kind", label="model_error content_policy_violation")
    page.click("button[data-action=fail]")
    expect_text(page, "#flash", "next submit call fails")
    assert [rule.fault.kind for rule in mock.faults.rules] == ["model_error"]
    rid = submit("this one fails")
    mock.clock.advance(30)
    expect_text(page, f"#r-{rid} .err", "content_policy_violation")
    assert "model_error content_policy_violation" in page.inner_text(f"#r-{rid} .c-notes")
    assert page.get_attribute(f"#r-{rid}", "data-status") == "error"

    page.select_option("#fail-kind", label="http_error 503")
    page.click("button[data-action=fail]")
    # the flash still shows the first rule's line: wait for the button's call itself to end
    page.wait_for_selector("button[data-action=fail]:not([disabled])")
    expect_text(page, "#flash", "next submit call fails")
    with pytest.raises(fal_client.client.FalClientHTTPError):
        submit("answered 503")
    failed = page.locator("#rows .st-error", has_text="answered 503")
    failed.wait_for()
    assert "http_error 503" in failed.text_content()


def test_a_script_in_the_prompt_is_shown_as_text(page, server, mock):
    prompt = "<script>alert(1)</script><img src=x onerror=alert(2)> & \"quotes\""
    open_live(page, server)
    rid = submit(prompt)
    expect_text(page, f"#r-{rid} .prompt", re.escape(prompt))  # inserted live
    page.reload()  # and server-rendered
    page.wait_for_selector(f"#r-{rid}")
    assert page.inner_text(f"#r-{rid} .prompt") == prompt
    page.goto(f"{server.url}/_mock/ui/requests/{rid}")
    assert prompt in page.inner_text("#detail .prompt")
    assert page.locator("#detail script, #detail img[src=x]").count() == 0
    assert page.dialogs == []


def test_actions_advance_cancel_and_reset(page, server, mock):
    open_live(page, server)
    first, second = submit("to cancel"), submit("to finish")
    expect_text(page, f"#r-{first} .badge", "IN_QUEUE")
    page.click(f"#r-{first} button[data-action=cancel]")
    expect_text(page, f"#r-{first} .err", "cancelled")
    page.fill("#advance-by", "30")
    page.click("button[data-action=advance]")
    expect_text(page, f"#r-{second} .badge", "^COMPLETED$")
    page.click("button[data-action=reset]")
    page.wait_for_selector("#empty")
    assert page.locator("#rows .row").count() == 0
    assert len(mock.mock.queue) == 0


def test_the_list_works_without_javascript(browser, server, mock):
    ids = [submit(f"no js {i}") for i in range(3)]
    mock.clock.advance(30)
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(server.url + "/_mock/")
        keys = page.eval_on_selector_all("#rows .row", "rows => rows.map(r => r.id)")
        assert keys == [f"r-{rid}" for rid in reversed(ids)]
        assert page.is_visible("form.filters button[type=submit]")
        assert not page.is_visible(".actions")  # the buttons need the control API's JSON: JS only
        page.select_option("#f-status", "IN_QUEUE")
        page.click("form.filters button[type=submit]")
        page.wait_for_url("**/_mock/?status=IN_QUEUE*")
        assert page.locator("#rows .row").count() == 0
    finally:
        context.close()


# -- HTTP-level tests (no browser) -----------------------------------------------------------
def test_server_rendered_html_is_escaped_paged_filtered_and_locked_down(server, mock):
    ids = [submit(f"<b>page</b> {i}") for i in range(dashboard.PAGE_SIZE + 5)]
    mock.clock.advance(1000)
    failing = submit("<script>bad()</script>")  # submitted after the advance: still IN_QUEUE
    with httpx.Client(base_url=server.url) as client:
        first = client.get("/_mock/")
        assert first.status_code == 200
        assert first.headers["content-type"] == "text/html; charset=utf-8"
        csp = first.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "img-src 'self' data:" in csp and "unsafe" not in csp
        assert first.headers["x-content-type-options"] == "nosniff"
        html = first.text
        assert "<script>bad()" not in html and "&lt;script&gt;bad()&lt;/script&gt;" in html
        assert "<b>page</b>" not in html
        assert html.count('class="row st-') == dashboard.PAGE_SIZE
        assert html.index(f'id="r-{failing}"') < html.index(f'id="r-{ids[-1]}"')  # newest first
        assert " on" + "click=" not in html and "style=" not in html  # nothing the CSP would block
        second = client.get("/_mock/", params={"page": 2}).text
        assert second.count('class="row st-') == 6 and f'id="r-{ids[0]}"' in second
        queued = client.get("/_mock/", params={"status": "IN_QUEUE"}).text
        assert queued.count('class="row st-') == 1 and f'id="r-{failing}"' in queued
        none = client.get("/_mock/", params={"endpoint": "fal-ai/other"}).text
        assert 'id="empty"' in none
        fragment = client.get("/_mock/ui/rows", params={"status": "COMPLETED", "page": "x"}).text
        assert fragment.count('class="row st-') == dashboard.PAGE_SIZE and fragment.lstrip().startswith("<div")
        for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
            asset = client.get(f"/_mock/ui/static/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)


def test_unknown_mock_paths_answer_fal_404_and_control_routes_still_win(server, mock):
    with httpx.Client(base_url=server.url) as client:
        for path in ("/_mock/nope", "/_mock/ui/", "/_mock/ui/static/other.js", "/_mock/ui/input/x/0"):
            answer = client.get(path)
            assert answer.status_code == 404 and answer.json() == {"detail": f"Path {path} not found"}, path
        assert client.get("/_mock/health").json()["status"] == "ok"
        assert client.post("/_mock/").status_code == 405
        assert client.get("/_mock/ui/requests/unknown").status_code == 404


def test_cancel_route_needs_json_and_answers_like_the_queue(server, mock):
    rid = submit("cancel me")
    with httpx.Client(base_url=server.url) as client:
        url = f"/_mock/ui/requests/{rid}/cancel"
        assert client.post(url, data={"a": "b"}).status_code == 415  # a cross-site form cannot
        assert client.post(url, json={}).json() == {"status": "CANCELLATION_REQUESTED"}
        assert client.post(url, json={}).status_code == 400
        assert client.post("/_mock/ui/requests/nope/cancel", json={}).status_code == 404


def test_remote_inputs_are_never_fetched_and_data_inputs_are_reserved_safely(server, mock):
    svg = "data:image/svg+xml;base64," + base64.b64encode(b"<svg onload='alert(1)'/>").decode()
    big = png_data_uri(400, noise=True)
    rid = submit("inputs", image_urls=[big, svg, REMOTE])
    with httpx.Client(base_url=server.url) as client:
        html = client.get("/_mock/").text
        assert "https://example.com" not in html.replace(f'title="{REMOTE}"', "")  # only as a tooltip
        assert f'src="/_mock/ui/input/{rid}/0"' in html
        image = client.get(f"/_mock/ui/input/{rid}/0")
        assert image.headers["content-type"] == "image/png" and image.content[:4] == b"\x89PNG"
        assert "sandbox" in image.headers["content-security-policy"]
        assert client.get(f"/_mock/ui/input/{rid}/1").status_code == 415  # SVG is never served
        assert client.get(f"/_mock/ui/input/{rid}/2").status_code == 404  # remote: never fetched


def test_a_slow_browser_is_dropped_not_waited_for():
    client = dashboard.Subscriber()
    for _ in range(dashboard.CLIENT_QUEUE):
        client.offer(b"x")
    assert not client.gone.is_set()
    client.offer(b"one too many")
    assert client.gone.is_set() and client.queue.qsize() == dashboard.CLIENT_QUEUE


def test_an_open_event_stream_holds_a_queue_watch_and_ends_when_the_server_stops():
    import threading
    import time

    server = BackgroundServer(FalMock(Settings(profile="instant"))).start()
    received: list[bytes] = []

    def listen() -> None:
        with httpx.stream("GET", server.url + "/_mock/ui/events", timeout=30) as answer:
            for chunk in answer.iter_bytes():
                received.append(chunk)

    listener = threading.Thread(target=listen, daemon=True)
    try:
        listener.start()
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert received and received[0].startswith(b"retry: 1000\n\nevent: hello\n")
        assert server.mock.driver.watched  # the queue moves on the clock while a browser watches
    finally:
        started = time.monotonic()
        server.stop()
        stopped = time.monotonic() - started
    listener.join(5)
    assert not listener.is_alive() and stopped < 1.0, f"stop took {stopped:.2f} s"
    assert not server.mock.driver.watched
