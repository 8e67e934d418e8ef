import sys
from pathlib import Path

# tests import their helpers (echo_endpoint, server_process) as top-level modules
sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = ["pytester"]
