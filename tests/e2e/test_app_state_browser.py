"""An app's state at a glance, in a real browser against daphne, the real worker and engine
(issue 15): a deploy that fails its healthcheck leaves the app reading `serving` (with a
warning) on the list and its page, at desktop width and at 390 px; the deploy page names the
check and its last probe, and neither the "queued" banner nor "following live" outlives the
deploy. Commit messages are recorded at clone and shown escaped."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from apps import services as app_services
from deployments import selectors, services
from deployments.models import Deploy
from tests.e2e import test_dashboard_browser as dashboard
from tests.e2e.conftest import httpd_app, via_traefik, wait_deploy, wait_for
from tests.e2e.test_dashboard_browser import DEPLOY_TIMEOUT, PHONE, _deploy_id, _shoot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
# The dashboard test's fixtures, under their own names: a logged-in page on daphne.
daphne, browser, page = dashboard.daphne, dashboard.browser, dashboard.page

MANIFEST = """\
run:
  port: 8000
  healthcheck: {{path: {path}, interval: 1, timeout: 1, retries: 2, start_period: 0}}
  domains: [{host}]
"""
# Repository content is untrusted: it must show as text, and never run.
V1_MESSAGE = "v1 <script>window.__pwned = 1</script> \"quoted\" & 'single'"


def test_a_failed_unhealthy_deploy_leaves_the_app_serving_with_a_warning(
    page, cluster_ready, unique_name, make_repo
):
    name = unique_name("state")
    host = f"{name}.koyra.test"
    repo = make_repo()
    files = httpd_app(cluster_ready["base"], "v1", manifest=MANIFEST.format(path="/", host=host))
    repo.commit(files, f"{V1_MESSAGE}\n\nbody of the message")
    # Owned by the user the `page` fixture logged in (its newest one).
    owner = get_user_model().objects.filter(username__startswith="dash-").latest("pk")
    app, _ = app_services.app_create(owner=owner, name=name, repo_url=repo.url, branch="main")
    d1 = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert d1.status == Deploy.Status.LIVE, d1.log_text
    assert (d1.commit_message, d1.commit_author) == (f"{V1_MESSAGE}\n\nbody of the message", "t")

    # v2 never becomes healthy; a short build step keeps it running while the page connects.
    slow = f"RUN echo {name} && sleep 2\n"
    broken = httpd_app(cluster_ready["base"], "v2", extra_run=slow)
    repo.commit(
        {**broken, ".paas/app.yaml": MANIFEST.format(path="/missing.html", host=host)}, "v2 broken"
    )
    page.goto(f"/apps/{name}/")
    page.get_by_role("button", name="Deploy", exact=True).click()
    d2_id = _deploy_id(page)
    expect(page.locator("#progress")).to_contain_text(f"Deploy #{d2_id} queued.")
    expect(page.locator("#conn")).to_have_text("following live")

    # It ends failed: the check is named with its last probe; nothing says it is still going.
    expect(page.locator("#status")).to_have_text("failed", timeout=DEPLOY_TIMEOUT)
    error = page.locator("#deploy-error")
    expect(error).to_contain_text("the healthcheck (GET /missing.html on port 8000) did not pass")
    expect(error).to_contain_text("404")
    expect(page.locator("#conn")).to_have_text("")
    expect(page.locator("#progress")).to_have_count(0)
    expect(page.locator("#commit-message")).to_contain_text("v2 broken by t")
    _shoot(page, "app-state-deploy-failed")
    d2 = Deploy.objects.get(pk=d2_id)
    assert d2.status == Deploy.Status.FAILED and d2.commit_message == "v2 broken"
    wait_for(lambda: via_traefik(host) == (200, "v1\n"), 30, "v1 still serving")

    # The list: serving (v1, its replicas healthy), with a warning about the failed deploy.
    page.goto("/apps/")
    row = page.locator(f'tr.app[data-app="{name}"]')
    expect(row).to_have_attribute("data-state", "serving")
    expect(row.locator('[data-label="Replicas"]')).to_have_text("1/1")
    warning = row.locator(".warn")
    expect(warning).to_have_text(f"\u26a0 latest deploy #{d2_id} failed; #{d1.pk} keeps serving")
    expect(row.locator('[data-label="Latest deploy"] .badge')).to_have_text(f"#{d2_id} failed")
    expect(row.locator(".subject")).to_contain_text("v1 <script>window.__pwned = 1</script>")
    expect(row.locator("a.app-link")).to_have_attribute("href", selectors.host_url(host))
    assert page.evaluate("window.__pwned === undefined")
    _shoot(page, "app-state-list")
    page.set_viewport_size(PHONE)
    expect(warning).to_be_visible()
    expect(row.locator('[data-state="serving"]')).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # The app page: the same state, the link, and the commit words in the history.
    page.goto(f"/apps/{name}/")
    expect(page.locator("#app-state [data-state]")).to_have_text("serving")
    expect(page.locator("#app-state .warn")).to_contain_text(f"#{d2_id} failed")
    expect(page.locator("#app-link")).to_have_attribute("href", selectors.host_url(host))
    expect(page.locator(f'li.deploy[data-deploy="{d2_id}"]')).to_contain_text("v2 broken")
    expect(page.locator(f'li.deploy[data-deploy="{d1.pk}"] .subject')).to_have_text(V1_MESSAGE)
    assert page.evaluate("window.__pwned === undefined")
    _shoot(page, "app-state-app")
