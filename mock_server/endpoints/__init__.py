"""The fal endpoints this mock emulates, one module each.

The queue and the HTTP layer only see :class:`~mock_server.core.endpoint.Endpoint`;
adding an endpoint means adding a module and a line in :func:`build_endpoints`.
"""
from __future__ import annotations

from mock_server.core.endpoint import Endpoint

__all__ = ["build_endpoints"]


def build_endpoints(validation: str = "documented") -> list[Endpoint]:
    """Every emulated endpoint, configured for a validation profile."""
    from mock_server.endpoints.wan25 import Wan25ImageToImage

    return [Wan25ImageToImage(profile=validation)]
