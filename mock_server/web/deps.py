"""Dependencies every router shares: the emulator, and the guards of the ``/_mock/`` control
routes (admin token, cross-site).  Overridable in tests through ``app.dependency_overrides``."""
from __future__ import annotations

import hmac
import ipaddress

from fastapi import Request

from mock_server.core import fal_errors
from mock_server.emulator import FalMock
from mock_server.web.dashboard_login import signed_in
from mock_server.web.responses import AnswerError


def get_emulator(request: Request) -> FalMock:
    """The :class:`FalMock` this app serves."""
    return request.app.state.emulator


def admin_token(request: Request) -> None:
    """The control API's admin token, when the server has one (``--admin-token``): sent as
    ``X-Fal-Mock-Admin-Token: T`` or ``Authorization: Bearer T``, or a browser's dashboard
    cookie (web/dashboard_login.py); else 401."""
    token = request.app.state.emulator.settings.admin_token
    if not token:
        return
    if signed_in(request, token):
        return
    given = request.headers.get("x-fal-mock-admin-token")
    if given is None:
        scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
        given = value.strip() if scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise AnswerError(fal_errors.detail(401, "Admin token required"))


def cross_site(request: Request) -> bool:
    """Whether a browser sent this from another site's page (CSRF): its ``Origin`` names
    another host than the one it reached.  Tools (curl, Node, Python) send no Origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site") == "cross-site"
    return origin.partition("://")[2].rstrip("/") != request.headers.get("host", "")


def same_site(request: Request) -> None:
    """A state-changing control call from another site's page is refused (403)."""
    if request.method not in ("GET", "HEAD") and cross_site(request):
        raise AnswerError(fal_errors.detail(403, "Cross-site requests to the control API are refused"))


def local_caller(request: Request) -> bool:
    """Whether the peer is on this machine (a loopback address; in-process clients count)."""
    client = request.scope.get("client")
    if not client:
        return True  # no socket: an in-process ASGI client
    try:
        return ipaddress.ip_address(str(client[0]).split("%", 1)[0]).is_loopback
    except ValueError:
        return client[0] in ("testclient",)
