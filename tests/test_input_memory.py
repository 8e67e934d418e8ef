"""Inputs keep memory bounded and the event loop free, whatever a client sends."""
from __future__ import annotations

import asyncio
import threading
import tracemalloc

from mock_server.core.files import FileStore
from mock_server.core.endpoint import EndpointEnv
from mock_server.endpoints.fal_app import inputs
from mock_server.endpoints.wan25 import Wan25ImageToImage


def test_a_large_percent_encoded_data_uri_decodes_in_bounded_memory():
    """``unquote_to_bytes`` of 3 MiB of ``%41`` built ~1M objects (hundreds of MB); slices keep
    the peak near the size of the result."""
    payload = "%41" * (1024 * 1024)
    tracemalloc.start()
    try:
        data = inputs._percent_decoded(payload, 10 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data == b"A" * (1024 * 1024)
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_percent_decoding_in_slices_equals_decoding_at_once():
    from urllib.parse import unquote_to_bytes

    for text in ("%41" * 30000 + "%4", "a%2" + "x" * 70000 + "%zz%41%%41", "%" * 70000, "%E2%82%AC" * 25000):
        assert inputs._percent_decoded(text, 10**9) == unquote_to_bytes(text)


def test_a_data_uri_is_decoded_off_the_event_loop(monkeypatch):
    threads = []
    decode = inputs._decode_data_uri

    def recording(*args):
        threads.append(threading.current_thread())
        return decode(*args)

    monkeypatch.setattr(inputs, "_decode_data_uri", recording)
    env = EndpointEnv(files=FileStore(), file_url=lambda n: n, own_file_name=lambda u: None)
    asyncio.run(inputs.read_inputs(["data:image/png;base64,AAAA"], env, inputs.InputLimits()))
    assert threads and threads[0] is not threading.main_thread()


def test_unused_image_urls_are_not_kept_with_the_request():
    endpoint = Wan25ImageToImage()
    big = "data:image/png;base64," + "A" * 100_000
    body = ('{"prompt": "x", "image_urls": ["https://e.com/a.png", "https://e.com/b.png", "%s"]}' % big).encode()
    parsed = endpoint.parse(body)
    assert parsed.params.image_urls == ["https://e.com/a.png", "https://e.com/b.png"]
    assert parsed.notes == ["Using the first 2 of 3 image_urls; the rest are ignored"]
