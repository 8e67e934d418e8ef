"""Both official clients, unmodified, against catalogued endpoints of every output kind
(issue 16): the Python ``fal_client`` here over HTTPS (tests/clients/python_generic.py);
``@fal-ai/client`` in tests/js/generic.test.mjs (run by tests/test_js_client.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from mock_server.endpoints.catalog import Catalog
from server_process import serve_with_state

SCRIPT = Path(__file__).parent / "clients" / "python_generic.py"
#: One endpoint per output kind, with inputs a user would send.
SAMPLE = {
    "fal-ai/flux/dev": {"prompt": "a lighthouse in a storm", "seed": 7, "num_images": 2,
                        "image_size": "landscape_4_3", "output_format": "png"},
    "fal-ai/kling-video/v2/master/text-to-video": {"prompt": "a boat at dawn", "duration": "5"},
    "fal-ai/elevenlabs/tts/turbo-v2.5": {"text": "Hello from the mock."},
    "fal-ai/trellis": {"image_url": "https://example.com/chair.png", "seed": 3},
    "fal-ai/wizper": {"audio_url": "https://example.com/speech.mp3"},
    "fal-ai/imageutils/nsfw": {"image_url": "https://example.com/a.png"},
}
MAGIC = {"png": "89504e47", "mp4": "66747970", "wav": "52494646", "glb": "676c5446"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve_with_state(tmp_path_factory, "--tls", "--profile", "default", "--speed", "20")


def test_the_python_client_runs_a_sample_of_every_output_kind(server):
    env = {**os.environ, **server.exports}
    done = subprocess.run([sys.executable, str(SCRIPT), json.dumps(SAMPLE)], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, f"{done.stderr}\n{server.output()}"
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    catalog = Catalog(None)
    for endpoint_id in SAMPLE:
        got = seen[endpoint_id]
        schema = catalog.get(endpoint_id).output_schema
        jsonschema.validate(got["subscribe"], schema)
        jsonschema.validate(got["run"], schema)
        assert got["updates"][-1] == "Completed", got["updates"]
        for fetched in got["files"]:
            assert fetched["status"] == 200 and fetched["bytes"] > 0
            assert fetched["head"].find(MAGIC[fetched["url"].rsplit(".", 1)[-1]]) in (0, 8)
    flux = seen["fal-ai/flux/dev"]["subscribe"]
    assert flux["seed"] == 7 and len(flux["images"]) == 2 and flux["has_nsfw_concepts"] == [False, False]
    assert (flux["images"][0]["width"], flux["images"][0]["height"]) == (1024, 768)
    assert seen["fal-ai/kling-video/v2/master/text-to-video"]["subscribe"]["video"]["url"].endswith(".mp4")
    assert seen["fal-ai/elevenlabs/tts/turbo-v2.5"]["run"]["audio"]["url"].endswith(".wav")
    assert seen["fal-ai/trellis"]["run"]["model_mesh"]["url"].endswith(".glb")
    assert isinstance(seen["fal-ai/wizper"]["run"]["text"], str)
    assert seen["422"] is not None and "prompt" in seen["422"]["text"]
