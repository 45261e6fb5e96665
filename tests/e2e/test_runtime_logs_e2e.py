"""Runtime logs against the real engine, daphne, Traefik and worker (nothing patched): the
SSE stream of /apps/<app>/logs/ shows the live task's output with its task label, a request
made through Traefik appears as it happens, and the app's secret value only as ****."""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps import access
from apps import services as app_services
from deployments import services
from deployments.boundaries import engine
from deployments.models import Deploy
from secrets_vault import services as vault
from tests.e2e import servers
from tests.e2e.conftest import via_traefik, wait_deploy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
daphne = servers.daphne

MANIFEST = """\
version: 1
secrets: [API_TOKEN]
run:
  port: 8000
  healthcheck: {{path: /index.html, interval: 1, timeout: 1, retries: 2, start_period: 0}}
  domains: [{host}]
"""


def _files(base: str, host: str) -> dict[str, str]:
    """busybox httpd -vv prints `url:/<path>` to stderr for each request; the app prints its
    secret once at start."""
    dockerfile = (
        f"FROM {base}\n"
        "RUN mkdir -p /www\n"
        "COPY index.html /www/index.html\n"
        'CMD ["sh", "-c", "echo app-start API_TOKEN=$API_TOKEN; '
        'exec httpd -f -vv -p 8000 -h /www"]\n'
    )
    return {
        "Dockerfile": dockerfile,
        "index.html": "hello\n",
        ".paas/app.yaml": MANIFEST.format(host=host),
    }


class Events:
    """Server-Sent Events read off a real HTTP response, as EventSource parses them."""

    def __init__(self, resp) -> None:
        self.resp, self.buf = resp, b""
        self.seen: list[dict] = []

    def until(self, predicate, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\n\n" in self.buf:
                block, self.buf = self.buf.split(b"\n\n", 1)
                fields = dict(ln.partition(": ")[::2] for ln in block.decode().split("\n"))
                if fields.get("event"):
                    event = {"event": fields["event"], **json.loads(fields["data"])}
                    self.seen.append(event)
                    if predicate(event):
                        return event
            chunk = self.resp.read1(65536)
            assert chunk, f"the stream ended; seen: {self.seen[-5:]}"
            self.buf += chunk
        raise AssertionError(f"not seen within {timeout}s; last events: {self.seen[-5:]}")


def test_the_live_tasks_output_streams_labelled_and_redacted(
    daphne, worker, cluster_ready, unique_name, make_repo, monkeypatch
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    name = unique_name("rtlogs")
    host = f"{name}.koyra.test"
    repo = make_repo()
    repo.commit(_files(cluster_ready["base"], host), "v1")
    app, _ = app_services.app_create(name=name, repo_url=repo.url, branch="main")
    value = f"rtlogs-e2e-{secrets.token_hex(12)}"
    vault.secret_set(app=app, key="API_TOKEN", value=value)
    deploy = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert deploy.status == Deploy.Status.LIVE, deploy.log_text
    wait_for(lambda: via_traefik(host, "/index.html")[0] == 200, 60, "the app via Traefik")

    user = get_user_model().objects.create(username=f"{name}-viewer")
    access.grant(app=app, user=user, role="viewer")
    browser = Client()
    browser.force_login(user)
    req = urllib.request.Request(f"{daphne}/apps/{name}/logs/stream?tail=50")
    req.add_header("Cookie", f"sessionid={browser.cookies['sessionid'].value}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = Events(resp)
        start = events.until(lambda e: "app-start" in e.get("text", ""), 30)
        assert start["text"] == "app-start API_TOKEN=****"
        (task,) = [
            t for t in engine.service_tasks(app.service_name) if t["DesiredState"] == "running"
        ]
        assert start["task"] == f"{task['Slot']}.{task['ID'][:12]}"
        assert re.fullmatch(r"1\.[a-z0-9]{12}", start["task"])

        probe = f"/probe-{secrets.token_hex(6)}.html"
        assert via_traefik(host, probe)[0] == 404  # httpd answers, and prints the request
        hit = events.until(lambda e: probe in e.get("text", ""), 20)
        assert hit["task"] == start["task"]
    assert all(value not in json.dumps(e) for e in events.seen)
