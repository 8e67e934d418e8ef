"""Logging a browser in to the dashboard with the admin token, as Jupyter does.

Off loopback the control routes need the admin token, which a browser cannot send as a
header.  The banner prints ``/_mock/?token=T``; that URL, opened once, is answered with a
redirect to the same page without the token (so it leaves the address bar and the history)
that sets a cookie: ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
page makes the browser send it, so no cross-site request is authorised by it),
``Path=/_mock/``, ``Secure`` when served over TLS.  Its value is derived from the token
(an HMAC), not the token itself, and its name carries the port (browsers share cookies across
ports: two mocks on one host keep their own).

What the cookie authorises: everything the admin token does (the dashboard, its event stream,
and the control API calls its buttons make: reset, faults, clock).  The control API's
state-changing calls also demand a JSON body and a same-site ``Origin`` (web/deps.py), so a
cross-site page can neither send the cookie nor pass those checks.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from mock_server.core.paths import DASHBOARD_ROOT

if TYPE_CHECKING:  # the banner imports this module for login_url, without loading FastAPI
    from fastapi import Request

    from mock_server.web.responses import RawResponse

#: The query parameter of the login URL.
TOKEN_PARAM = "token"


def cookie_name(port: int) -> str:
    return f"fal_mock_dashboard_{port}"


def session_value(token: str) -> str:
    """The cookie's value for ``token``: it proves the token was shown without being it."""
    return hmac.new(token.encode(), b"fal-mock dashboard session", hashlib.sha256).hexdigest()


def login_url(base_url: str, token: str) -> str:
    """The dashboard URL that logs a browser in (printed in the banner)."""
    return f"{base_url}{DASHBOARD_ROOT}?{urlencode({TOKEN_PARAM: token})}"


def _port(request: "Request") -> int:
    return request.app.state.emulator.settings.port


def signed_in(request: "Request", token: str) -> bool:
    """Whether the request carries the dashboard cookie for ``token``, or is the login URL
    itself (``GET /_mock/?token=T``) with the right token."""
    cookie = request.cookies.get(cookie_name(_port(request)))
    if cookie is not None and hmac.compare_digest(cookie.encode(), session_value(token).encode()):
        return True
    given = request.query_params.get(TOKEN_PARAM)
    return (given is not None and request.method in ("GET", "HEAD") and request.url.path == DASHBOARD_ROOT
            and hmac.compare_digest(given.encode(), token.encode()))


def login_answer(request: "Request") -> "RawResponse | None":
    """For the login URL: a 303 to the page without the token that sets the cookie; else None."""
    from mock_server.web.responses import RawResponse

    token = request.app.state.emulator.settings.admin_token
    if not token or TOKEN_PARAM not in request.query_params:
        return None
    rest = [(k, v) for k, v in request.query_params.multi_items() if k != TOKEN_PARAM]
    location = DASHBOARD_ROOT + (f"?{urlencode(rest)}" if rest else "")
    cookie = (f"{cookie_name(_port(request))}={session_value(token)}; Path={DASHBOARD_ROOT}; HttpOnly; "
              f"SameSite=Strict" + ("; Secure" if request.url.scheme == "https" else ""))
    return RawResponse(303, b"", [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                                  (b"cache-control", b"no-store"), (b"referrer-policy", b"no-referrer")],
                       b"text/plain; charset=utf-8")
