"""Scenarios run by the UNMODIFIED Python fal-client, configured only by environment.

Run as ``python python_scenarios.py NAME`` with the ``export`` lines of
``fal-mock serve --tls`` in the environment (FAL_KEY, FAL_RUN_HOST,
FAL_QUEUE_RUN_HOST, SSL_CERT_FILE), or those of ``fal-mock serve --proxy`` alone
(HTTPS_PROXY, SSL_CERT_FILE, FAL_KEY: test_https_proxy.py).  Prints one JSON object: what the client saw.
The pytest side (test_python_client.py) asserts on it.
"""
from __future__ import annotations

import asyncio
import json
import sys

import fal_client
import httpx

APP = "fal-ai/wan-25-preview/image-to-image"
ARGS = {
    "prompt": "a lighthouse in a storm",
    "image_urls": ["https://example.com/a.png"],
    "seed": 7,
    "num_images": 2,
    "image_size": "landscape_4_3",
}
BAD = {"prompt": "", "image_urls": ["https://example.com/a.png"]}


def update_json(update) -> dict:
    kind = type(update).__name__
    out: dict = {"type": kind}
    if isinstance(update, fal_client.Queued):
        out["position"] = update.position
    if isinstance(update, (fal_client.InProgress, fal_client.Completed)):
        out["logs"] = [log["message"] for log in (update.logs or [])]
    if isinstance(update, fal_client.Completed):
        out["metrics"] = update.metrics
    return out


def images_check(result: dict) -> list[dict]:
    """Download every image (trusting the mock CA via SSL_CERT_FILE) and report what came back."""
    checks = []
    for image in result["images"]:
        response = httpx.get(image["url"])
        checks.append({"status": response.status_code, "bytes": len(response.content),
                       "png": response.content[:8] == b"\x89PNG\r\n\x1a\n"})
    return checks


def subscribe_logs() -> dict:
    updates: list[dict] = []
    enqueued: list[str] = []
    result = fal_client.subscribe(APP, ARGS, with_logs=True, on_enqueue=enqueued.append,
                                  on_queue_update=lambda u: updates.append(update_json(u)))
    return {"enqueued": enqueued, "updates": updates, "result": result, "images": images_check(result)}


def submit_status_result() -> dict:
    handle = fal_client.submit(APP, ARGS)
    first = update_json(handle.status(with_logs=True))
    result = handle.get()
    completed = fal_client.status(APP, handle.request_id, with_logs=False)
    again = fal_client.result(APP, handle.request_id)
    return {"request_id": handle.request_id, "first": first, "result": result,
            "completed": update_json(completed), "completed_logs_is_none": completed.logs is None,
            "again_equal": again == result}


def iter_events() -> dict:
    handle = fal_client.submit(APP, ARGS)
    events = [update_json(event) for event in handle.iter_events(with_logs=True, interval=0.05)]
    return {"events": events}


def cancel_queued() -> dict:
    handle = fal_client.submit(APP, ARGS)
    before = update_json(handle.status())
    handle.cancel()
    after = update_json(handle.status())
    try:
        handle.get()
        error = None
    except fal_client.client.FalClientHTTPError as exc:
        error = {"status": exc.status_code, "message": exc.message}
    return {"before": before, "after": after, "error": error}


def run() -> dict:
    result = fal_client.run(APP, ARGS)
    return {"result": result, "images": images_check(result)}


def run_422() -> dict:
    try:
        fal_client.run(APP, BAD)
    except fal_client.client.FalClientHTTPError as exc:
        return {"status": exc.status_code, "message": exc.message,
                "billable": exc.response_headers.get("x-fal-billable-units")}
    return {"status": None}


def queue_422() -> dict:
    handle = fal_client.submit(APP, BAD)
    status = update_json(handle.status())
    try:
        handle.get()
    except fal_client.client.FalClientHTTPError as exc:
        return {"submitted": True, "status_after": status, "status": exc.status_code, "message": exc.message}
    return {"status": None}


def async_flows() -> dict:
    async def main() -> dict:
        updates: list[dict] = []
        subscribed = await fal_client.subscribe_async(APP, ARGS, with_logs=True,
                                                      on_queue_update=lambda u: updates.append(update_json(u)))
        handle = await fal_client.submit_async(APP, ARGS)
        status = update_json(await handle.status(with_logs=True))
        got = await handle.get()
        ran = await fal_client.run_async(APP, ARGS)
        return {"subscribed": subscribed, "updates": updates, "status": status, "got": got, "ran": ran}

    return asyncio.run(main())


def _png(side: int) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _uploads(tmp: str) -> tuple[str, str, bytes]:
    """A 400x400 and a 100x100 PNG (too small for Wan 2.5) in ``tmp``, and the first one's bytes."""
    import os

    big, small = os.path.join(tmp, "big.png"), os.path.join(tmp, "small.png")
    with open(big, "wb") as fh:
        fh.write(_png(400))
    with open(small, "wb") as fh:
        fh.write(_png(100))
    return big, small, _png(400)


def _error(exc: "fal_client.client.FalClientHTTPError") -> dict:
    detail = exc.message if isinstance(exc.message, list) else [{}]
    return {"status": exc.status_code, "type": detail[0].get("type"), "input": detail[0].get("input")}


def upload_and_use() -> dict:
    """``upload_file``, then the uploaded URL in calls: the mock reads the bytes it stored
    (the small image is refused for its size, which only reading it can tell)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        big, small, big_bytes = _uploads(tmp)
        big_url, small_url = fal_client.upload_file(big), fal_client.upload_file(small)
    fetched = httpx.get(big_url)
    handle = fal_client.submit(APP, {**ARGS, "image_urls": [big_url]})
    result = handle.get()
    try:
        fal_client.run(APP, {**ARGS, "image_urls": [small_url]})
        refused = None
    except fal_client.client.FalClientHTTPError as exc:
        refused = _error(exc)
    return {"big_url": big_url, "small_url": small_url, "fetched_equal": fetched.content == big_bytes,
            "result": result, "refused": refused}


def upload_and_use_async() -> dict:
    import tempfile

    async def main() -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            big, small, big_bytes = _uploads(tmp)
            big_url = await fal_client.upload_file_async(big)
            small_url = await fal_client.upload_file_async(small)
        async with httpx.AsyncClient() as http:
            fetched = await http.get(big_url)
        ran = await fal_client.run_async(APP, {**ARGS, "image_urls": [big_url]})
        handle = await fal_client.submit_async(APP, {**ARGS, "image_urls": [small_url]})
        try:
            await handle.get()
            refused = None
        except fal_client.client.FalClientHTTPError as exc:
            refused = _error(exc)
        return {"big_url": big_url, "small_url": small_url, "fetched_equal": fetched.content == big_bytes,
                "result": ran, "refused": refused}

    return asyncio.run(main())


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]]()))
