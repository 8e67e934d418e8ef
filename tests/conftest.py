import sys
from pathlib import Path

# tests import their helpers (echo_endpoint, server_process) as top-level modules
sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = ["pytester"]


def pytest_addoption(parser):
    parser.addoption("--no-lane", action="store_true",
                     help="serve every in-process mock (BackgroundServer) without the fast lane: "
                          "every call then goes through the FastAPI routes")


def pytest_configure(config):
    if config.getoption("--no-lane"):
        from mock_server.server.background import BackgroundServer

        serve_with_lane = BackgroundServer.__init__

        def serve_without_lane(self, *args, lane: bool = False, **kwargs):
            serve_with_lane(self, *args, lane=False, **kwargs)

        BackgroundServer.__init__ = serve_without_lane
