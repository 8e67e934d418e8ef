"""The dashboard's buttons on a shared server (issue 18, section 3; docs/namespaces.md): on the
unfiltered page they act on every namespace, explicitly (``?namespace=*``) and labelled "all
namespaces"; on a page filtered to one namespace they act on that one only.  In headless
Chromium, as the other dashboard tests (tests/test_dashboard.py: its browser and page fixtures)."""
from __future__ import annotations

import httpx
import pytest

from mock_server.emulator import FalMock
from mock_server.pytest_plugin import FalMockFixture
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings
from test_dashboard import APP, REMOTE, browser, expect_text, open_live, page  # noqa: F401


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(FalMock(Settings(profile="default"))) as background:
        yield background


@pytest.fixture
def mock(server):
    """The server reset, its clock frozen (requests stay in the queue until the test moves it)."""
    server.call(server.mock.reset)
    server.call(server.mock.clock.freeze)
    yield FalMockFixture(server)
    server.call(server.mock.reset)


def submit(mock: FalMockFixture, namespace: str, prompt: str = "shared") -> str:
    answer = httpx.post(mock.queue_url + APP, json={"prompt": prompt, "image_urls": [REMOTE]},
                        headers={"Authorization": f"Key {namespace}:secret"})
    assert answer.status_code == 200, answer.text
    return answer.json()["request_id"]


def control_calls(page, path: str) -> list[str]:
    """The URLs of the page's calls to ``path`` (query included)."""
    return [url for url in page.requested if url.split("?")[0].endswith(path)]


def namespaces_in_queue(mock: FalMockFixture) -> list[str]:
    return sorted(queued.namespace for queued in mock.mock.queue)


def test_on_the_unfiltered_page_the_buttons_act_on_every_namespace_and_say_so(page, server, mock):
    alice, bob = submit(mock, "alice"), submit(mock, "bob")
    open_live(page, server)
    expect_text(page, "#scope", "^all namespaces:$")
    assert page.get_attribute("button[data-action=reset]", "title") == "POST /_mock/reset?namespace=*"
    for rid in (alice, bob):
        page.wait_for_selector(f"#r-{rid}")

    page.select_option("#fail-on", "status")
    page.select_option("#fail-kind", label="http_error 503")
    page.click("button[data-action=fail]")
    expect_text(page, "#flash", r"next status call fails \(any namespace\)")
    assert control_calls(page, "/_mock/faults") == [f"{server.url}/_mock/faults?namespace=*"]
    assert [rule.namespace for rule in mock.faults.rules] == [None]  # fires on every namespace's calls

    page.click("button[data-action=reset]")
    page.wait_for_selector("#empty")
    expect_text(page, "#flash", "^All namespaces reset.$")
    assert control_calls(page, "/_mock/reset") == [f"{server.url}/_mock/reset?namespace=*"]
    assert namespaces_in_queue(mock) == [] and mock.faults.rules == []


def test_on_a_filtered_page_the_buttons_act_on_its_namespace_only(page, server, mock):
    alice, bob = submit(mock, "alice"), submit(mock, "bob")
    open_live(page, server, "/_mock/?namespace=alice")
    expect_text(page, "#scope", "^namespace alice:$")
    assert page.input_value("#f-namespace") == "alice"  # the filter shows the page's namespace
    page.wait_for_selector(f"#r-{alice}")
    assert page.locator(f"#r-{bob}").count() == 0

    page.select_option("#fail-on", "submit")
    page.click("button[data-action=fail]")
    expect_text(page, "#flash", r"next submit call fails \(namespace alice\)")
    assert control_calls(page, "/_mock/faults") == [f"{server.url}/_mock/faults?namespace=alice"]
    assert [rule.namespace for rule in mock.faults.rules] == ["alice"]

    page.click("button[data-action=reset]")
    expect_text(page, "#flash", "^Namespace alice reset.$")
    page.wait_for_selector("#empty")  # its rows are gone at once (a namespace's reset sends no event)
    assert control_calls(page, "/_mock/reset") == [f"{server.url}/_mock/reset?namespace=alice"]
    assert namespaces_in_queue(mock) == ["bob"], "another namespace's request is kept"
    assert mock.faults.rules == []


def test_a_page_filtered_with_star_is_the_unfiltered_page(page, server, mock):
    alice, bob = submit(mock, "alice"), submit(mock, "bob")
    open_live(page, server, "/_mock/?namespace=*")
    expect_text(page, "#scope", "^all namespaces:$")
    for rid in (alice, bob):
        page.wait_for_selector(f"#r-{rid}")
    carol = submit(mock, "carol")
    page.wait_for_selector(f"#r-{carol}")  # live rows of every namespace arrive


def test_choosing_a_namespace_in_the_filter_narrows_the_buttons(page, server, mock):
    submit(mock, "alice"), submit(mock, "bob")
    open_live(page, server)
    page.select_option("#f-namespace", "bob")
    page.wait_for_url("**/_mock/?*namespace=bob*")
    page.wait_for_selector("#live.on")
    expect_text(page, "#scope", "^namespace bob:$")
    page.click("button[data-action=reset]")
    expect_text(page, "#flash", "^Namespace bob reset.$")
    assert namespaces_in_queue(mock) == ["alice"]
