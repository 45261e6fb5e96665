"""How fast POST /webhooks/github/<app>/ answers: signed pushes that each queue a deploy,
with Redis up and with Redis unreachable (the row is the queue of record, so the answer must
not wait on Redis). Target: p99 well under 1 s in both cases.

Run: .venv/bin/python benchmarks/webhook_latency.py (needs Redis for the "up" case)."""

from __future__ import annotations

import json
import secrets
import time
import uuid

from _common import percentile, setup_django, write_section

setup_django()

from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from apps.services import app_create  # noqa: E402
from deployments.webhooks import github  # noqa: E402

N = 200


def _run(client: Client, name: str, secret: str) -> list[float]:
    timings = []
    for _ in range(N):
        body = json.dumps(
            {
                "ref": "refs/heads/main",
                "before": "0" * 40,
                "after": secrets.token_hex(20),
                "deleted": False,
                "created": False,
                "repository": {"full_name": f"acme/{name}"},
            }
        ).encode()
        headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": github.signature(secret, body),
        }
        t = time.perf_counter()
        resp = client.post(
            f"/webhooks/github/{name}/", data=body, content_type="application/json", headers=headers
        )
        timings.append(time.perf_counter() - t)
        assert resp.status_code == 202, resp.content
    return timings


def main() -> None:
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["testserver"]
    client = Client()
    rows = []
    for label, url in (
        ("Redis up", settings.REDIS_URL),
        ("Redis unreachable", "redis://127.0.0.1:1/0"),
    ):
        settings.RQ_QUEUES = {"deploys": {"URL": url, "DEFAULT_TIMEOUT": 60}}
        name = f"bench-{secrets.token_hex(3)}"
        _, secret = app_create(name=name, repo_url=f"https://github.com/acme/{name}.git")
        t = _run(client, name, secret)
        rows.append((label, percentile(t, 50), percentile(t, 95), percentile(t, 99), max(t)))
    import django_rq

    settings.RQ_QUEUES = {"deploys": {"URL": settings.REDIS_URL, "DEFAULT_TIMEOUT": 60}}
    django_rq.get_queue("deploys").connection.flushdb()  # the bench's own Redis database
    table = "| case | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {r[0]} | {r[1] * 1000:.1f} | {r[2] * 1000:.1f} | {r[3] * 1000:.1f} | "
        f"{r[4] * 1000:.1f} |"
        for r in rows
    )
    write_section(
        "Webhook answer time (benchmarks/webhook_latency.py)",
        f"""
{N} signed `push` deliveries per case, each verified, recorded and queuing a deploy (SQLite,
in-process client: the view and services, without the HTTP server).

{table}
""",
    )


if __name__ == "__main__":
    main()
