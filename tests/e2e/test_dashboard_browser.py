"""The dashboard in a real browser against daphne, the real worker and the real engine: create
an app, deploy it and watch the log arrive live, deploy again, roll back."""

from __future__ import annotations

import re
import secrets

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from playwright.sync_api import expect, sync_playwright

from deployments.models import Deploy, LogLine
from tests.e2e import servers
from tests.e2e.conftest import ROOT, httpd_app

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
daphne = servers.daphne  # the session fixture, under its own name

ARTIFACTS = ROOT / "artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MANIFEST = """\
version: 1
run:
  port: 8000
  healthcheck: {path: /index.html, interval: 1, timeout: 1, retries: 2, start_period: 0}
"""
DEPLOY_TIMEOUT = 240_000  # ms


@pytest.fixture
def browser(daphne, worker, monkeypatch):
    """Chromium from the system (never `playwright install`). Playwright's sync API runs an
    event loop in this thread, which Django's ORM guard takes for async code: the test's own
    ORM calls are allowed here (only in this process, after daphne and the worker started)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, daphne):
    user = get_user_model().objects.create_user(
        f"dash-{secrets.token_hex(3)}", password="pw-for-e2e-123"
    )
    # A team member who may create apps (SPEC §6: the permission apps.add_app).
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="apps", codename="add_app")
    )
    context = browser.new_context(viewport=DESKTOP, base_url=daphne)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto("/accounts/login/")
    pg.fill("input[name=username]", user.username)
    pg.fill("input[name=password]", "pw-for-e2e-123")
    pg.click("button[type=submit]")
    expect(pg).to_have_url(re.compile(r"/apps/$"))
    yield pg
    context.close()


def _shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(ARTIFACTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def _deploy_id(page) -> int:
    expect(page).to_have_url(re.compile(r"/deploys/\d+/$"))
    m = re.search(r"/deploys/(\d+)/$", page.url)
    assert m is not None, page.url
    return int(m.group(1))


def _log_seqs(page) -> list[int]:
    return [
        int(s) for s in page.eval_on_selector_all("#log .ln", "els => els.map(e => e.dataset.seq)")
    ]


def _wait_live_without_reload(page, deploy_id: int) -> Deploy:
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#status")).to_have_text("live", timeout=DEPLOY_TIMEOUT)
    expect(page.locator("#log")).to_contain_text("live: every task runs")
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    deploy = Deploy.objects.get(pk=deploy_id)
    assert deploy.status == Deploy.Status.LIVE, deploy.log_text
    stored = list(LogLine.objects.filter(deploy=deploy).values_list("seq", flat=True))
    assert _log_seqs(page) == stored  # every line, in order, none twice
    return deploy


def test_create_deploy_watch_live_deploy_again_and_roll_back(
    page, cluster_ready, unique_name, make_repo
):
    name = unique_name("dash")
    repo = make_repo()
    # The unique name keeps the slow step out of the layer cache of earlier runs.
    slow = f"RUN echo building {name} && for i in 1 2 3 4 5; do echo slow-$i; sleep 1; done\n"
    v1 = repo.commit(httpd_app(cluster_ready["base"], "v1", manifest=MANIFEST, extra_run=slow))

    # New app: the webhook URL and secret, once.
    page.goto("/apps/new/")
    page.fill("input[name=name]", name)
    page.fill("input[name=repo_url]", repo.url)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text(f"{name} created")
    expect(page.locator("#webhook-url")).to_contain_text(f"/webhooks/github/{name}/")
    expect(page.locator("#webhook-secret")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    page.click(f"text=Go to {name}")

    # Deploy: the log grows while the build runs, with no reload.
    page.get_by_role("button", name="Deploy", exact=True).click()
    first_id = _deploy_id(page)
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#log .ln", has_text="slow-1")).to_have_count(1, timeout=DEPLOY_TIMEOUT)
    expect(page.locator("#status")).to_have_text("building")
    assert page.locator("#log .ln", has_text="slow-5").count() == 0  # still arriving
    expect(page.locator("#conn")).to_have_text("following live")
    _shoot(page, "dashboard-deploy-building")
    expect(page.locator("#log .ln", has_text="slow-5")).to_have_count(1)
    assert page.evaluate("window.__sameDocument === true")
    first = _wait_live_without_reload(page, first_id)
    assert first.commit == v1
    for stage in ("clone", "build", "push", "rollout"):
        expect(page.locator(f'#summary [data-stage="{stage}"]')).to_be_visible()
    expect(page.locator("#summary")).to_contain_text(first.image.pinned)
    expect(page.locator("#conn")).to_have_text("")  # finished: the socket closed
    _shoot(page, "dashboard-deploy")

    # A second commit, deployed from the app page.
    v2 = repo.commit({"index.html": "v2\n"}, "v2")
    page.goto(f"/apps/{name}/")
    page.get_by_role("button", name="Deploy", exact=True).click()
    second = _wait_live_without_reload(page, _deploy_id(page))
    assert second.commit == v2

    # Roll back to the first release: a new deploy, trigger rollback, live, no build.
    page.goto(f"/apps/{name}/")
    rollback = page.get_by_role("button", name=re.compile(rf"^Rollback to #{first.pk}\b"))
    rollback.click()
    # It asks first, naming the release and what it replaces (issue 15); no deploy yet.
    expect(page.locator("#confirm-question")).to_contain_text(
        f"Roll back to #{first.pk} (commit {v1[:7]}"
    )
    expect(page.locator("#confirm-question")).to_contain_text(f"It replaces #{second.pk}.")
    assert not Deploy.objects.filter(app__name=name, trigger="rollback").exists()
    page.locator("#confirm-button").click()
    back = _wait_live_without_reload(page, _deploy_id(page))
    assert (back.trigger, back.source_id, back.commit) == ("rollback", first.pk, v1)
    assert back.image_id == first.image_id
    assert "slow-1" not in back.log_text
    expect(page.locator("#summary")).to_contain_text("rollback of")

    page.goto(f"/apps/{name}/")
    expect(page.locator("#live-image")).to_contain_text(first.image.pinned)
    items = page.locator("#deploys li.deploy")
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_have_attribute("data-trigger", "rollback")
    expect(items.nth(0)).to_have_attribute("data-status", "live")
    _shoot(page, "dashboard-app")

    # Promote the newer release back (roll forward) from the history, through its
    # confirmation, at 390 px: the link and the question fit the phone.
    page.set_viewport_size(PHONE)
    promote = page.locator(f'li.deploy[data-deploy="{second.pk}"] a.promote')
    expect(promote).to_be_visible()
    expect(page.locator(f'li.deploy[data-deploy="{first.pk}"] a.promote')).to_have_count(0)
    promote.click()
    question = page.locator("#confirm-question")
    expect(question).to_contain_text(f"Promote #{second.pk} (commit {v2[:7]}, \u201cv2\u201d")
    expect(question).to_contain_text(f"It replaces #{back.pk}.")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _shoot(page, "dashboard-promote-confirm")
    page.locator("#confirm-button").click()
    forward = _wait_live_without_reload(page, _deploy_id(page))
    assert (forward.trigger, forward.source_id, forward.image_id) == (
        "rollback",
        second.pk,
        second.image_id,
    )
    page.goto(f"/apps/{name}/")
    expect(page.locator("#live-image")).to_contain_text(second.image.pinned)
    expect(page.locator(f'li.deploy[data-deploy="{first.pk}"] a.promote')).to_be_visible()
