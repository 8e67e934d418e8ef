"""The UNMODIFIED Python fal-client against catalogued endpoints (issue 16), configured only by
the ``export`` lines of ``fal-mock serve --tls``.

``python python_generic.py SAMPLE_JSON``: SAMPLE_JSON maps endpoint ids to inputs.  For each,
``subscribe`` (queue, with logs) and ``run``; every file URL in the outputs is downloaded over
HTTPS.  Then a 422 through ``run``.  Prints one JSON object: what the client saw.
"""
from __future__ import annotations

import json
import sys

import fal_client
import httpx


def file_urls(value) -> list[str]:
    if isinstance(value, dict):
        if isinstance(value.get("url"), str):
            return [value["url"]]
        return [u for item in value.values() for u in file_urls(item)]
    if isinstance(value, list):
        return [u for item in value for u in file_urls(item)]
    return []


def main(sample: dict) -> dict:
    seen: dict = {}
    for endpoint_id, arguments in sample.items():
        updates: list[str] = []
        queued = fal_client.subscribe(endpoint_id, arguments=arguments, with_logs=True,
                                      on_queue_update=lambda u: updates.append(type(u).__name__))
        ran = fal_client.run(endpoint_id, arguments=arguments)
        files = []
        for url in file_urls(queued) + file_urls(ran):
            response = httpx.get(url)
            files.append({"url": url, "status": response.status_code, "bytes": len(response.content),
                          "head": response.content[:12].hex()})
        seen[endpoint_id] = {"subscribe": queued, "run": ran, "updates": updates, "files": files}
    first = next(iter(sample))
    try:
        fal_client.run(first, arguments={})
        seen["422"] = None
    except Exception as exc:  # fal_client raises its own error type for a 422
        seen["422"] = {"type": type(exc).__name__, "text": str(exc)}
    return seen


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
