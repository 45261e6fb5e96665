"""Issue 16 item 7: the apps list and an app page with 100 apps and 10,000 deploys.

Seeds a throwaway SQLite database with bulk_create (apps, deploys of every status with their
images and spec, one webhook delivery per webhook deploy), first small (10 apps x 10 deploys)
and then at scale (100 apps x 100 deploys), and renders both pages through the Django test
client as a superuser: the query count must be the same at both sizes, and the server time
(p95 of the measured requests) under 100 ms. The pages ask the Docker engine for replica
counts (one call per page, as in production): the engine of this machine answers them.

Run: .venv/bin/python benchmarks/scale.py [--requests 30]"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import time
from datetime import timedelta

from _common import percentile, setup_django, write_section

setup_django()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.models import App  # noqa: E402
from deployments.models import Deploy, Image  # noqa: E402
from deployments.webhooks.models import WebhookDelivery  # noqa: E402
from secrets_vault import crypto  # noqa: E402

TARGET_MS = 100
S = Deploy.Status
SPEC = {"image": "registry.local/app@sha256:" + "0" * 64, "replicas": 2, "env": {"A": "1"}}


def _stages(start) -> dict:
    out, t = {}, start
    for stage, seconds in (("clone", 0.1), ("build", 2.5), ("push", 0.4), ("rollout", 9.1)):
        out[stage] = {
            "started": t.isoformat(),
            "finished": (t + timedelta(seconds=seconds)).isoformat(),
        }
        t += timedelta(seconds=seconds)
    return out


def seed(apps: int, deploys_per_app: int, start: int = 0) -> None:
    """`apps` more apps, each with `deploys_per_app` finished deploys (the newest live)."""
    token = crypto.encrypt(secrets.token_urlsafe(32))
    now = timezone.now()
    new = App.objects.bulk_create(
        App(
            name=f"scale-{start + i:03d}",
            repo_url=f"https://github.com/acme/scale-{start + i:03d}.git",
            domains=[f"scale-{start + i:03d}.example.com"],
            webhook_secret_token=token,
        )
        for i in range(apps)
    )
    rnd = random.Random(start)
    images, deploys = [], []
    for app in new:
        for j in range(deploys_per_app):
            commit = secrets.token_hex(20)
            newest = j == deploys_per_app - 1
            status = (
                S.LIVE
                if newest
                else rnd.choice([S.RETIRED, S.RETIRED, S.FAILED, S.SUPERSEDED, S.CANCELLED])
            )
            when = now - timedelta(minutes=10 * (deploys_per_app - j))
            image = None
            if status in (S.LIVE, S.RETIRED):
                image = Image(
                    app=app,
                    ref=f"registry.local/{app.name}:{commit[:12]}",
                    digest="sha256:" + secrets.token_hex(32),
                    commit=commit,
                    size=50_000_000,
                    created=when,
                )
                images.append(image)
            deploys.append(
                Deploy(
                    app=app,
                    commit=commit,
                    commit_message="Checkout: show the delivery date\n\nbody",
                    commit_author="Dev One",
                    trigger=rnd.choice(["push", "push", "push", "manual", "workflow_run"]),
                    status=status,
                    image=image,
                    error="healthcheck failed: GET / answered 500" if status == S.FAILED else "",
                    stages=_stages(when),
                    spec=SPEC if image else {},
                    created=when,
                    started=when + timedelta(seconds=1),
                    finished=when + timedelta(seconds=14),
                )
            )
    Image.objects.bulk_create(images, batch_size=500)
    for d in deploys:  # the image's pk exists now
        d.image_id = d.image.pk if d.image else None
    Deploy.objects.bulk_create(deploys, batch_size=500)
    WebhookDelivery.objects.bulk_create(
        (
            WebhookDelivery(
                delivery_id=secrets.token_hex(16),
                app_id=d.app_id,
                event=d.trigger,
                commit=d.commit,
                outcome=WebhookDelivery.ACCEPTED,
                reason="push to refs/heads/main",
                deploy=d,
                received=d.created,
            )
            for d in Deploy.objects.filter(app__in=new, trigger__in=Deploy.WEBHOOK_TRIGGERS)
        ),
        batch_size=500,
    )


def measure(client: Client, url: str, n: int) -> tuple[int, list[float]]:
    """(queries of one request, server seconds of n requests after two warm-ups)."""
    for _ in range(2):
        assert client.get(url).status_code == 200, url
    with CaptureQueriesContext(connection) as q:
        assert client.get(url).status_code == 200
    queries = len(q.captured_queries)  # now: the next request clears the log
    times = []
    for _ in range(n):
        t = time.perf_counter()
        resp = client.get(url)
        times.append(time.perf_counter() - t)
        assert resp.status_code == 200
    return queries, times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["testserver"]
    user = get_user_model().objects.create_superuser("scale", password="bench-password-123")
    client = Client()
    client.force_login(user)
    results = {}
    seed(10, 10)  # small: an app page with 10 deploys among 10 apps
    for page, url in {"apps list": "/apps/", "app page": "/apps/scale-000/"}.items():
        results[("small", page)] = measure(client, url, args.requests)
    App.objects.all().delete()
    seed(100, 100)  # at scale: an app page with 100 deploys among 100 apps
    pages = {"apps list": "/apps/", "app page": "/apps/scale-050/"}
    counts = (App.objects.count(), Deploy.objects.count(), WebhookDelivery.objects.count())
    for page, url in pages.items():
        results[("large", page)] = measure(client, url, args.requests)
    from deployments import app_state

    t = time.perf_counter()
    for _ in range(5):
        app_state.replica_counts()
    engine_ms = (time.perf_counter() - t) / 5 * 1000
    rows, ok = [], True
    for page in pages:
        q_small, _ = results[("small", page)]
        q_large, times = results[("large", page)]
        p50, p95 = percentile(times, 50) * 1000, percentile(times, 95) * 1000
        ok &= q_small == q_large and p95 < TARGET_MS
        rows.append(
            f"| {page} | {q_small} | {q_large} | {p50:.1f} | {p95:.1f} | {max(times) * 1000:.1f} |"
        )
    load = os.getloadavg()
    worst = max(percentile(results[("large", p)][1], 95) * 1000 for p in pages)
    body = f"""
Issue 16 item 7. Seeded with bulk_create into a throwaway SQLite database: {counts[0]} apps,
{counts[1]} deploys (the newest of each app live, the others retired, failed, superseded or
cancelled, with images and specs), {counts[2]} webhook deliveries. Django test client as a
superuser, {args.requests} requests per page after two warm-ups; server time includes the one
engine call per page for replica counts ({engine_ms:.1f} ms on this machine's shared engine).
Queries counted at 10 apps x 10 deploys and at 100 x 100. Load average at the end:
{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.

| page | queries (10 x 10) | queries (100 x 100) | p50 ms | p95 ms | max ms |
|---|---|---|---|---|---|
{chr(10).join(rows)}
"""
    if args.no_write:
        print(body)
    else:
        write_section("Scale: 100 apps, 10,000 deploys (benchmarks/scale.py)", body)
    verdict = "met" if ok else "MISSED"
    print(f"scale: worst p95 {worst:.1f} ms (target < {TARGET_MS} ms, queries constant): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
