"""An ASGI app for tests/test_serve.py: Koyra's own application, plus one path that answers
with the names of the modules the serving process has imported and one that answers with
the size of the body it was sent."""

from __future__ import annotations

import json
import sys

from koyra.asgi import application as koyra_application

PATH = "/-/modules"
ECHO = "/-/body-size"


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == ECHO:
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})
        return
    if scope["type"] != "http" or scope["path"] != PATH:
        await koyra_application(scope, receive, send)
        return
    names = sorted(name for name, module in sys.modules.items() if module is not None)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(names).encode()})
