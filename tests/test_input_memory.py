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


def test_a_large_unused_image_url_is_not_kept_with_the_request():
    endpoint = Wan25ImageToImage()
    big = "data:image/png;base64," + "A" * 100_000
    body = ('{"prompt": "x", "image_urls": ["https://e.com/a.png", "https://e.com/b.png", "%s"]}' % big).encode()
    parsed = endpoint.parse(body)
    assert parsed.params.image_urls == ["https://e.com/a.png", "https://e.com/b.png"]
    assert parsed.notes == ["Using the first 2 of 3 image_urls; the rest are ignored"]


class _SlowServer:
    """An HTTP server on 127.0.0.1: ``/drip`` sends one byte every 0.1 s for 10 s; ``/hold``
    answers only once ``release`` is set, counting how many requests it holds at once."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.release = threading.Event()
        self.held = 0
        self.most_held = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path == "/drip":
                    self.send_response(200)
                    self.send_header("content-length", "100")
                    self.end_headers()
                    for _ in range(100):
                        if server.release.wait(0.1):
                            return
                        try:
                            self.wfile.write(b"x")
                            self.wfile.flush()
                        except OSError:
                            return
                    return
                with server._lock:
                    server.held += 1
                    server.most_held = max(server.most_held, server.held)
                server.release.wait(10)
                with server._lock:
                    server.held -= 1
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _fetch_env(timeout: float) -> EndpointEnv:
    return EndpointEnv(files=FileStore(), file_url=lambda n: n, own_file_name=lambda u: None,
                       allow_fetch=True, fetch_timeout=timeout)


def test_the_fetch_timeout_bounds_the_whole_download():
    """A server dripping a byte every 0.1 s used to hold a fetch as long as it liked (the
    timeout was per read); now the download ends with file_download_error at the timeout."""
    import orjson

    server = _SlowServer()
    try:
        answer = asyncio.run(inputs.read_inputs([server.url + "/drip"], _fetch_env(1.0), inputs.InputLimits()))
    finally:
        server.close()
    assert orjson.loads(answer.body)["detail"][0]["type"] == "file_download_error"


def test_concurrent_fetches_hold_at_most_a_few_buffers_at_once():
    server = _SlowServer()

    async def many() -> None:
        env = _fetch_env(5.0)
        tasks = [asyncio.ensure_future(inputs.read_inputs([f"{server.url}/hold{i}"], env, inputs.InputLimits()))
                 for i in range(inputs.FETCHES_AT_ONCE + 4)]
        while server.held < inputs.FETCHES_AT_ONCE:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # room for any fetch beyond the cap to arrive (it must not)
        most = server.most_held
        server.release.set()
        await asyncio.gather(*tasks)
        assert most == inputs.FETCHES_AT_ONCE

    try:
        asyncio.run(asyncio.wait_for(many(), 30))
    finally:
        server.close()
