"""The dashboard shows synchronous runs (outputs, result answer, logs) and lays out the detail
page's row without thumbnails over the next column (issue 18, section 2).  In headless Chromium,
as the other dashboard tests (tests/test_dashboard.py: its browser and page fixtures)."""
from __future__ import annotations

import pytest

from mock_server.emulator import FalMock
from mock_server.pytest_plugin import FalMockFixture, _wire_fal_client
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings
from test_dashboard import APP, REMOTE, browser, open_live, page, png_data_uri, wait_images_loaded  # noqa: F401


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(FalMock(Settings(profile="instant"))) as background:
        yield background


@pytest.fixture
def mock(server, monkeypatch):
    server.call(server.mock.reset)
    fixture = FalMockFixture(server)
    _wire_fal_client(fixture, monkeypatch)
    yield fixture
    server.call(server.mock.reset)


def _boxes_intersect(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def test_a_synchronous_run_shows_its_outputs_result_and_logs(page, server, mock):
    import fal_client

    output = fal_client.run(APP, {"prompt": "a run", "image_urls": [REMOTE], "num_images": 2, "seed": 3})
    [ran] = mock.requests(kind="run")
    rid = ran.request_id
    open_live(page, server)
    assert wait_images_loaded(page, f"#r-{rid} img.out", 2) == [512, 512]  # the row's outputs

    page.click(f"#r-{rid} a.rid")
    page.wait_for_url(f"**/_mock/ui/requests/{rid}")
    text = page.inner_text("#detail")
    assert "Result answer: HTTP 200" in text
    assert output["images"][0]["file_name"] in text
    assert page.locator("#detail table.logs tr").count() >= 1, text  # the run's log lines
    assert "Queue state" not in text  # a run never was in the queue
    assert wait_images_loaded(page, "#detail section img.out", 2) == [512, 512]


def test_a_failed_run_names_its_error_and_shows_the_answer(page, server, mock):
    import fal_client

    with pytest.raises(fal_client.client.FalClientHTTPError):
        fal_client.run(APP, {"prompt": "", "image_urls": [REMOTE]})
    [ran] = mock.requests(kind="run")
    page.goto(f"{server.url}/_mock/ui/requests/{ran.request_id}")
    assert "Result answer: HTTP 422" in page.inner_text("#detail")
    assert page.inner_text(f"#r-{ran.request_id} .err") not in ("", "HTTP 422")  # the error's type


@pytest.mark.parametrize("width", [1100, 1500])
def test_the_detail_rows_thumbnails_stay_in_their_column(page, server, mock, width):
    import fal_client

    page.set_viewport_size({"width": width, "height": 1100})
    inputs = [png_data_uri(400, (20, 120, 200)), png_data_uri(400, (200, 120, 20)), REMOTE]
    handle = fal_client.submit(APP, {"prompt": "many", "image_urls": inputs, "num_images": 4, "seed": 1})
    handle.get()
    page.goto(f"{server.url}/_mock/ui/requests/{handle.request_id}")
    row = f"#r-{handle.request_id}"
    wait_images_loaded(page, f"{row} img.out", 4)
    notes = page.locator(f"{row} .c-notes").bounding_box()
    tiles = page.locator(f"{row} .c-images figure")
    assert tiles.count() == 7
    for i in range(tiles.count()):
        box = tiles.nth(i).bounding_box()
        assert not _boxes_intersect(box, notes), (i, box, notes)
    # and the images section below still shows them large
    assert page.eval_on_selector("#detail section img.out", "img => img.getBoundingClientRect().width") == 192
