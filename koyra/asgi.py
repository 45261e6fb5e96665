from __future__ import annotations

import gc
import io
import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application
from django.core.management import call_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koyra.settings")
django_asgi_app = get_asgi_application()
# Refuse to serve with a broken configuration (no Fernet key, no SECRET_KEY): the same
# system checks as `manage.py check`.
call_command("check", fail_level="ERROR", stdout=io.StringIO())

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from deployments.routing import websocket_urlpatterns  # noqa: E402
from koyra.serial_asgi import WebhookIntake  # noqa: E402

# GitHub's deliveries: answered several at once, on one thread (koyra/serial_asgi.py).
SERIAL_PREFIXES = ("/webhooks/",)
_pages_app = ASGIStaticFilesHandler(django_asgi_app)
_serial_app = WebhookIntake(fallback=_pages_app)


async def http_app(scope, receive, send):
    app = _serial_app if scope["path"].startswith(SERIAL_PREFIXES) else _pages_app
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

# Everything made so far (Django, its apps, the URLconf, Twisted) lives as long as the process.
# Frozen, the cyclic garbage collector stops scanning it at each full collection: in daphne at
# 200 webhook deliveries a second those took up to 120 ms of CPU each (every request waiting
# on the GIL meanwhile) with these 108,000 objects in sight, and 13-21 ms without them
# (BENCHMARKS.md, webhook intake).
gc.freeze()
