"""``python -m mock_server`` is the ``fal-mock`` command."""
import sys

from mock_server.cli import main

sys.exit(main())
