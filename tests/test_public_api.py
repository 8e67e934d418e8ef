"""What users import from ``mock_server`` is declared in ``__all__`` and every name resolves."""
from __future__ import annotations

import subprocess
import sys

import mock_server


def test_every_public_name_resolves_to_its_home():
    for name in mock_server.__all__:
        assert getattr(mock_server, name) is not None, name
    from mock_server.emulator import FalMock
    from mock_server.server.background import BackgroundServer
    from mock_server.web.app import create_app

    assert mock_server.FalMock is FalMock and mock_server.BackgroundServer is BackgroundServer
    assert mock_server.create_app is create_app


def test_importing_the_package_loads_nothing_heavy():
    code = ("import sys, mock_server; "
            "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'pydantic', 'PIL') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

