"""Calls that name one of fal's storage or schema hosts in ``Host`` (``rest.fal.ai``,
``v3.fal.media``, ``fal.ai``) go to the app's stand-in for that host, by path, as the JS
proxy's target host does (:func:`mock_server.protocol.paths.fal_host_path`).  They arrive so
through the HTTPS proxy mode (:mod:`mock_server.server.https_proxy`), where the client speaks
to ``https://rest.fal.ai/...`` itself; the queue and run hosts need no rewriting (the queue's
``Host: queue.*`` routing, the run host's catch-all)."""
from __future__ import annotations

from mock_server.protocol.hosts import host_name
from mock_server.protocol.paths import fal_host_path


class FalHostRoutes:
    """Pure-ASGI middleware: rewrites the path of a call to fal's storage or schema host."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"host":
                    path = fal_host_path(host_name(value.decode("latin-1")), scope["path"])
                    if path is not None:
                        scope = dict(scope, path=path, raw_path=path.encode("latin-1"))
                    break
        await self.app(scope, receive, send)
