"""The Traefik boundary: does Traefik route a host yet? (It polls the Swarm, so a brand-new
service is reachable a moment after its tasks run.)"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from django.conf import settings

TRAEFIK_NOT_FOUND = b"404 page not found"


def _traefik_knows(host: str) -> bool:
    url = f"http://127.0.0.1:{settings.KOYRA_HTTP_PORT}/"
    req = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=3):  # noqa: S310 (fixed scheme)
            return True
    except urllib.error.HTTPError as exc:
        # Traefik's own answer for a host it has no router for; anything else is the app's.
        return not (exc.code == 404 and exc.read(64).strip() == TRAEFIK_NOT_FOUND)
    except (urllib.error.URLError, OSError):
        return False


def wait_routed(host: str, timeout: float) -> bool:
    """True once Traefik on this node routes `host`, False if it did not within timeout (no
    Traefik here, or slower than expected). Only for the plain HTTP entrypoint: with ACME,
    `web` redirects every host."""
    if settings.KOYRA_ACME_EMAIL:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _traefik_knows(host):
            return True
        time.sleep(0.5)
    return False
