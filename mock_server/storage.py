"""Offline storage uploads (fal_client.upload*, fal.storage.upload): see install()."""
from __future__ import annotations


def install(app) -> None:
    """Mount the storage routes on a FalMockApp (REST_PREFIX, CDN_PREFIX in mock_server.app)."""
