"""The floor: a bare ASGI app answering fixed JSON, served by the same uvicorn settings as
fal-mock (uvloop, httptools, no access log).  Nothing can be faster on this server stack
per request; ``bench/run_all.py`` reports fal-mock's rates as a share of this app's.

    python -m uvicorn floor_app:app --app-dir bench --port 18293 --loop uvloop --http httptools \\
        --no-access-log --log-level warning
"""
from __future__ import annotations

BODY = (b'{"status":"IN_QUEUE","request_id":"00000000-0000-0000-0000-000000000000",'
        b'"response_url":"http://127.0.0.1/queue/x/requests/0","queue_position":0}')
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]


async def app(scope, receive, send):
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    more = scope["method"] == "POST"
    while more:  # read the whole body, as any real handler must
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
