"""The control API on its FastAPI routers: its own OpenAPI document and Swagger UI, typed
bodies answering today's 400 shape, fal's 405, and the guards on every route."""
from __future__ import annotations

import httpx
import pytest

from mock_server.emulator import FalMock
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings

BAD_REQUEST = {"error_type": "bad_request"}


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(FalMock(Settings(profile="instant"))) as running:
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
        client.post("/_mock/reset?namespace=*")


def test_the_control_api_has_its_own_openapi_document_and_swagger_ui(client):
    document = client.get("/_mock/docs/openapi.json").json()
    paths = document["paths"]
    for path, methods in {
        "/_mock/health": {"get"}, "/_mock/requests": {"get"}, "/_mock/queue": {"get"},
        "/_mock/queue/{request_id}": {"get"}, "/_mock/reset": {"post"}, "/_mock/clock": {"get", "post"},
        "/_mock/faults": {"get", "post", "delete"}, "/_mock/faults/{rule_id}": {"delete"},
        "/_mock/config": {"get", "post"}, "/_mock/openapi.json": {"get"},
        "/_mock/webhooks": {"get"}, "/_mock/webhooks/config": {"get", "post"}, "/_mock/webhooks/reset": {"post"},
        "/_mock/.well-known/jwks.json": {"get"},
    }.items():
        assert set(paths.get(path, {})) == methods, path
    # typed bodies are documented
    schemas = document["components"]["schemas"]
    assert {"ClockChange", "FaultRuleSpec", "ConfigChange", "WebhookSwitches"} <= set(schemas)
    assert schemas["ConfigChange"]["properties"]["allow_fetch"]["anyOf"][0]["type"] == "boolean"
    # the 405 stand-ins are not operations
    assert "put" not in paths["/_mock/reset"]
    page = client.get("/_mock/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text


def test_bad_control_input_answers_todays_400_shape(client):
    for path, body in [("/_mock/clock", {"advance": "soon"}), ("/_mock/clock", {"advance": -1}),
                       ("/_mock/config", {"allow_fetch": "yes"}), ("/_mock/config", {"colour": "red"}),
                       ("/_mock/config", {"profile": "nope"}), ("/_mock/faults", {"on": "nowhere"}),
                       ("/_mock/faults", {"times": "1"}), ("/_mock/clock", [1])]:
        response = client.post(path, json=body)
        assert response.status_code == 400, (path, body, response.text)
        assert response.headers["x-fal-error-type"] == "bad_request"
        data = response.json()
        assert set(data) == {"detail", "error_type"} and data["error_type"] == "bad_request"
        assert isinstance(data["detail"], str) and data["detail"]
    broken = client.post("/_mock/clock", content=b"{not json")
    assert broken.status_code == 400 and broken.json()["detail"] == "Request body is not valid JSON"
    assert client.get("/_mock/requests", params={"since": "x"}).status_code == 400
    assert client.get("/_mock/config").json()["allow_fetch"] is False  # nothing changed


def test_bodies_are_json_whatever_their_content_type(client):
    """``curl -d '{"advance": 5}'`` sends a form content type: still JSON, as before."""
    client.post("/_mock/clock", json={"freeze": True})
    now = client.get("/_mock/clock").json()["now"]
    moved = client.post("/_mock/clock", content=b'{"advance": 5}',
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert moved.status_code == 200 and moved.json()["now"] == pytest.approx(now + 5)
    assert client.post("/_mock/clock").json()["frozen"] is True  # an empty body is {}
    assert client.post("/_mock/clock", json={"unfreeze": True}).json()["frozen"] is False


def test_wrong_methods_answer_fals_405_and_unknown_paths_fals_404(client):
    for method, path in [("PUT", "/_mock/reset"), ("GET", "/_mock/reset"), ("POST", "/_mock/requests"),
                         ("PATCH", "/_mock/clock"), ("PUT", "/_mock/faults"), ("GET", "/_mock/faults/rule-1"),
                         ("DELETE", "/_mock/config"), ("POST", "/_mock/health"), ("POST", "/_mock/webhooks"),
                         ("PUT", "/_mock/webhooks/config"), ("GET", "/_mock/webhooks/reset"),
                         ("POST", "/_mock/.well-known/jwks.json")]:
        response = client.request(method, path)
        assert (response.status_code, response.content) == (405, b'{"detail":"Method Not Allowed"}'), (method, path)
    missing = client.get("/_mock/nope/deeper")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Path /_mock/nope/deeper not found"})


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/_mock/reset", None), ("POST", "/_mock/clock", {"freeze": True}), ("DELETE", "/_mock/faults", None),
    ("POST", "/_mock/config", {"auth": False}), ("POST", "/_mock/webhooks/config", {"duplicate": True}),
    ("POST", "/_mock/webhooks/reset", None),
])
def test_every_state_changing_control_route_refuses_another_sites_page(client, method, path, body):
    response = client.request(method, path, json=body, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403, path
    assert response.json() == {"detail": "Cross-site requests to the control API are refused"}


def test_an_admin_token_guards_every_control_route_but_health_and_fals_hosts():
    with BackgroundServer(FalMock(Settings(profile="instant", admin_token="s3cret"))) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for path in ("/_mock/requests", "/_mock/queue", "/_mock/clock", "/_mock/faults", "/_mock/config",
                         "/_mock/openapi.json", "/_mock/webhooks", "/_mock/webhooks/config"):
                assert client.get(path).status_code == 401, path
                assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200, path
            assert client.get("/_mock/health").status_code == 200
            # issue 21.11: the public key is public (a verifier off loopback reads it without the token)
            assert client.get("/_mock/.well-known/jwks.json").status_code == 200
            assert client.get("/_mock/rest/.well-known/jwks.json").status_code == 200


def test_a_clock_move_past_what_it_can_show_is_a_400_and_everything_keeps_answering():
    """``{"advance": 1e308}`` was accepted, then statuses, the dashboard and streams answered 500."""
    from mock_server.emulator import FalMock
    from mock_server.server.background import BackgroundServer
    from mock_server.settings import Settings

    with BackgroundServer(FalMock(Settings(profile="instant"))) as server:
        import httpx

        with httpx.Client(base_url=server.url, headers={"Authorization": "Key a:b"}) as client:
            submitted = client.post("/queue/fal-ai/wan-25-preview/image-to-image",
                                    json={"prompt": "x", "image_urls": ["https://e.com/a.png"]}).json()
            for body in ({"advance": 1e308}, {"freeze": True, "at": 1e308}):
                refused = client.post("/_mock/clock", json=body)
                assert refused.status_code == 400 and refused.json()["error_type"] == "bad_request", body
            assert client.get(submitted["status_url"]).status_code in (200, 202)
            assert client.get("/_mock/").status_code == 200


# the /_mock/ routes that stand for fal's own hosts: browsers upload there (fal-js), so no
# cross-site guard; everything else under /_mock/ that changes state must refuse another site
_FAL_HOST_STAND_INS = ("/_mock/rest/", "/_mock/cdn/", "/_mock/files/")


def test_a_new_state_changing_control_route_cannot_skip_the_cross_site_guard():
    """Every route of the app under /_mock/ with a state-changing method, found by walking the
    app's routes (not a hand-kept list), refuses a call from another site's page."""
    import re

    from starlette.routing import Route

    from mock_server.web.app import create_app

    def every_route(routes):
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI's included routers
            yield from every_route(included.routes) if included is not None else (route,)

    app = create_app(FalMock(Settings(profile="instant")))
    checked = []
    with BackgroundServer(FalMock(Settings(profile="instant"))) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for route in every_route(app.routes):
                if not isinstance(route, Route) or not route.path.startswith("/_mock/"):
                    continue
                if route.path.startswith(_FAL_HOST_STAND_INS) or route.path.endswith("{rest:path}"):
                    continue  # fal's hosts, or a catch-all answering fal's 404/405 (it serves nothing)
                path = re.sub(r"\{[^}]+\}", "x", route.path)
                for method in sorted((route.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
                    response = client.request(method, path, json={}, headers={"Origin": "https://evil.example"})
                    # refused, or a method the route does not serve at all (fal's 405)
                    assert response.status_code in (403, 405), (method, route.path, response.status_code)
                    if response.status_code == 403:
                        checked.append((method, route.path))
    for known in (("POST", "/_mock/reset"), ("POST", "/_mock/clock"), ("POST", "/_mock/config"),
                  ("DELETE", "/_mock/faults"), ("POST", "/_mock/webhooks/config"), ("POST", "/_mock/webhooks/reset"),
                  ("POST", "/_mock/ui/requests/{request_id}/cancel")):
        assert known in checked, (known, checked)
