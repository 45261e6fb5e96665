"""An ASGI app for tests/test_serve.py: Koyra's own application, plus one path that answers
with the names of the modules the serving process has imported."""

from __future__ import annotations

import json
import sys

from koyra.asgi import application as koyra_application

PATH = "/-/modules"


async def application(scope, receive, send):
    if scope["type"] != "http" or scope["path"] != PATH:
        await koyra_application(scope, receive, send)
        return
    names = sorted(name for name, module in sys.modules.items() if module is not None)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(names).encode()})
