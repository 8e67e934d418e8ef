"""Off loopback the dashboard is opened with the URL the banner prints: the token once, then a
cookie (issue 18, section 2)."""
from __future__ import annotations

import argparse

import httpx

from mock_server import cli
from mock_server.emulator import FalMock
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings

TOKEN = "s3cret-token"


def test_off_loopback_the_banner_prints_a_dashboard_url_that_logs_in():
    parser = argparse.ArgumentParser()
    cli._add_server_flags(parser)
    settings = cli.settings_from(parser.parse_args(["--host", "0.0.0.0", "--port", "9876"]))
    [line] = [line for line in cli.banner_lines(settings) if line.startswith("# dashboard: ")]
    assert line == f"# dashboard: http://127.0.0.1:9876/_mock/?token={settings.admin_token}"
    local = cli.settings_from(parser.parse_args(["--port", "9876"]))
    assert "# dashboard: http://127.0.0.1:9876/_mock/" in cli.banner_lines(local)


def test_the_login_url_sets_a_strict_httponly_cookie_and_drops_the_token():
    with BackgroundServer(FalMock(Settings(profile="instant", admin_token=TOKEN))) as server, \
            httpx.Client(base_url=server.url) as browser:
        assert browser.get("/_mock/").status_code == 401  # no token, no cookie
        assert browser.get("/_mock/?token=wrong").status_code == 401
        login = browser.get(f"/_mock/?token={TOKEN}&status=COMPLETED")
        assert login.status_code == 303
        assert login.headers["location"] == "/_mock/?status=COMPLETED"  # the token leaves the URL
        cookie = login.headers["set-cookie"]
        name, _, rest = cookie.partition("=")
        value = rest.split(";")[0]
        assert name == f"fal_mock_dashboard_{server.port}" and TOKEN not in value
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/_mock/"} <= attributes
        # the cookie now opens the dashboard, its rows, its event stream ...
        assert browser.get("/_mock/").status_code == 200
        assert browser.get("/_mock/ui/rows").status_code == 200
        with browser.stream("GET", "/_mock/ui/events") as events:
            assert events.status_code == 200
            assert b"event: hello" in next(events.iter_bytes())
        # ... and the control calls its buttons make (same-site, JSON)
        assert browser.post("/_mock/reset?namespace=*", json={}).status_code == 200
        # a cookie of another value, or none, opens nothing
        assert httpx.get(f"{server.url}/_mock/", cookies={name: "0" * 64}).status_code == 401
        assert httpx.get(f"{server.url}/_mock/requests").status_code == 401
        # the token in the URL logs in only on the dashboard page
        assert httpx.get(f"{server.url}/_mock/requests?token={TOKEN}").status_code == 401


def test_a_browser_opens_the_printed_url_and_stays_signed_in():
    from test_dashboard import CHROMIUM_ARGS, chromium_path
    from playwright.sync_api import sync_playwright

    with BackgroundServer(FalMock(Settings(profile="instant", admin_token=TOKEN))) as server, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{server.url}/_mock/?token={TOKEN}")
            page.wait_for_selector("#live.on")  # the page and its event stream, on the cookie
            assert page.url == f"{server.url}/_mock/"  # the token left the address bar
            assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
            [cookie] = page.context.cookies()
            assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/_mock/")
            page.click("button[data-action=reset]")  # a control call from the dashboard's button
            page.wait_for_selector("#flash:has-text('All namespaces reset.')")
        finally:
            browser.close()
