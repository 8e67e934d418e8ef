"""Signed webhook delivery for ``?fal_webhook=URL``: see install()."""
from __future__ import annotations


def install(app) -> None:
    """Hook webhook delivery into a FalMockApp's queue and mount its routes."""
