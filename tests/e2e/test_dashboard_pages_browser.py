"""The dashboard's other pages in a real browser against daphne, the real worker, engine and
Traefik (issue 15), on one app deployed once to keep the suite short: the copy buttons of
the one-time webhook secret and the payload URL (read back from the clipboard, through the
Clipboard API and through the fallback), runtime log lines arriving live, a running deploy
cancelled through its confirmation, the settings page (branch and domains, a plain env var set
and unset with an inline error for a bad name, the secrets the manifest needs, set or
missing), a secret deleted through its confirmation, a new webhook secret, and deleting the
app behind its typed confirmation. Desktop and 390 px, screenshots in artifacts/."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import expect

from apps import services as app_services
from apps.models import App
from deployments import services
from deployments.boundaries import engine
from deployments.models import Deploy
from secrets_vault import services as vault
from tests.e2e import test_dashboard_browser as dashboard
from tests.e2e.conftest import via_traefik, wait_deploy, wait_for
from tests.e2e.test_dashboard_browser import DEPLOY_TIMEOUT, DESKTOP, PHONE, _deploy_id, _shoot
from tests.e2e.test_runtime_logs_e2e import _files

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
# The dashboard test's fixtures, under their own names: a logged-in page on daphne.
daphne, browser, page = dashboard.daphne, dashboard.browser, dashboard.page


def _shoot_and_fit(page, name: str) -> None:
    """Screenshots at both widths; at 390 px nothing scrolls sideways."""
    _shoot(page, name)
    page.set_viewport_size(PHONE)
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size(DESKTOP)
    assert fits, f"{name}: the page scrolls sideways at 390 px"


def _copy(page, target: str, label: str) -> str:
    """Click the copy button of #target; it says Copied; what the clipboard holds."""
    button = page.locator(f'button[data-copy="{target}"]')
    expect(button).to_have_text(label)
    button.click()
    expect(button).to_have_text("Copied")
    return page.evaluate("navigator.clipboard.readText()")


def _copy_without_clipboard_api(page, target: str, label: str) -> str:
    """As over plain http (no navigator.clipboard): the fallback selects and copies."""
    page.evaluate(
        "Object.defineProperty(navigator, 'clipboard', {value: undefined, configurable: true})"
    )
    button = page.locator(f'button[data-copy="{target}"]')
    button.click()
    expect(button).to_have_text("Copied")
    page.evaluate("delete navigator.clipboard")  # the prototype's again, to read it back
    return page.evaluate("navigator.clipboard.readText()")


def test_copy_logs_cancel_settings_secrets_and_delete(page, cluster_ready, unique_name, make_repo):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    name = unique_name("pages")
    host = f"{name}.koyra.test"
    repo = make_repo()
    repo.commit(_files(cluster_ready["base"], host), "v1")  # secrets: [API_TOKEN]

    # Created: the webhook secret and payload URL, each with a copy button that works.
    page.goto("/apps/new/")
    page.fill("input[name=name]", name)
    page.fill("input[name=repo_url]", repo.url)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text(f"{name} created")
    app = App.objects.get(name=name)
    secret = app_services.app_webhook_secret(app=app)
    assert _copy(page, "webhook-secret", "Copy secret") == secret
    url = page.locator("#webhook-url").text_content()
    assert url.endswith(f"/webhooks/github/{name}/")
    assert _copy_without_clipboard_api(page, "webhook-url", "Copy URL") == url
    _shoot_and_fit(page, "pages-created")

    vault.secret_set(app=app, key="API_TOKEN", value=f"pages-{secrets.token_hex(8)}")
    live = wait_deploy(services.deploy_create(app=app, trigger="manual"))
    assert live.status == Deploy.Status.LIVE, live.log_text
    wait_for(lambda: via_traefik(host, "/index.html")[0] == 200, 60, "the app via Traefik")

    # Runtime logs: a request made now shows up in the open page, without a reload.
    page.goto(f"/apps/{name}/logs/")
    log = page.locator("#runtime-log")
    expect(page.locator("#conn")).to_have_text("following live")
    expect(log).to_contain_text("app-start API_TOKEN=****")
    page.evaluate("window.__sameDocument = true")
    probe = f"/probe-{secrets.token_hex(6)}.html"
    assert via_traefik(host, probe)[0] == 404  # httpd -vv prints the request it answered
    expect(log.locator(".ln", has_text=probe)).to_have_count(1, timeout=30_000)
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    _shoot_and_fit(page, "pages-runtime-logs")

    # Cancel on the deploy page asks first, naming that deploy alone (Back leads to it);
    # nothing stops until confirmed.
    slow = f"RUN echo {name} && for i in $(seq 1 60); do echo slow-$i; sleep 1; done\n"
    files = _files(cluster_ready["base"], host)
    files["Dockerfile"] = files["Dockerfile"].replace("COPY ", slow + "COPY ", 1)
    repo.commit(files, "v2 slow")
    page.goto(f"/apps/{name}/")
    page.get_by_role("button", name="Deploy", exact=True).click()
    running_id = _deploy_id(page)
    expect(page.locator("#log .ln", has_text="slow-1")).to_have_count(1, timeout=DEPLOY_TIMEOUT)
    page.get_by_role("button", name="Cancel", exact=True).click()
    question = page.locator("#confirm-question")
    expect(question).to_contain_text(f"Cancel #{running_id} (building, commit")
    expect(question).to_contain_text(f"#{live.pk} stays live.")
    expect(page.locator("#confirm-back")).to_have_attribute("href", f"/deploys/{running_id}/")
    assert not Deploy.objects.get(pk=running_id).cancel_requested
    _shoot_and_fit(page, "pages-cancel-confirm")
    page.locator("#confirm-button").click()
    assert _deploy_id(page) == running_id
    expect(page.locator("#status")).to_have_text("cancelled", timeout=60_000)
    assert Deploy.objects.get(pk=running_id).status == Deploy.Status.CANCELLED
    assert via_traefik(host, "/index.html") == (200, "hello\n")  # v1 kept serving

    # Settings: branch and domains; a plain env var, refused inline, then set and unset.
    page.goto(f"/apps/{name}/settings/")
    needed = page.locator("#secrets-needed-panel")
    expect(needed.locator("li", has_text="API_TOKEN")).to_contain_text("set")
    page.fill("#id_settings_branch", "release")
    page.fill("#id_settings_domains", f"www.{host}")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".msg-success")).to_contain_text(f"Settings of {name} saved")
    app.refresh_from_db()
    assert (app.branch, app.domains) == ("release", [f"www.{host}"])
    env = page.locator("#env-panel")
    env.get_by_label("Name").fill("1BAD")
    env.get_by_label("Value").fill("debug")
    env.get_by_role("button", name="Set variable").click()
    expect(env.locator(".error")).to_contain_text("not a valid environment variable name")
    expect(env.get_by_label("Name")).to_have_value("1BAD")  # kept for fixing, nothing set
    _shoot_and_fit(page, "pages-settings-env-error")
    env.get_by_label("Name").fill("LOG_LEVEL")
    env.get_by_role("button", name="Set variable").click()
    expect(env.locator("li.env-var", has_text="LOG_LEVEL")).to_contain_text("debug")
    app.refresh_from_db()
    assert app.env == {"LOG_LEVEL": "debug"}
    env.get_by_role("button", name="Unset LOG_LEVEL").click()
    expect(env.locator("li.env-var")).to_have_count(0)
    app.refresh_from_db()
    assert app.env == {}

    # Deleting a secret asks first, naming it; then the settings page says it is missing.
    page.goto(f"/apps/{name}/")
    page.get_by_role("button", name="Delete API_TOKEN").click()
    expect(page.locator("#confirm-question")).to_contain_text(
        f"Delete the secret API_TOKEN of {name}?"
    )
    expect(page.locator("#confirm")).to_contain_text("The app's manifest lists it")
    assert app.secrets.filter(key="API_TOKEN").exists()
    _shoot_and_fit(page, "pages-secret-delete-confirm")
    page.locator("#confirm-button").click()
    expect(page.locator(".msg-success")).to_contain_text("API_TOKEN deleted.")
    assert not app.secrets.exists()
    # The app page's Secrets panel says it too, with nothing left to delete.
    row = page.locator('#secret-panel li[data-secret="API_TOKEN"]')
    expect(row).to_contain_text("missing: the manifest needs it")
    expect(page.get_by_role("button", name="Delete API_TOKEN")).to_have_count(0)
    page.goto(f"/apps/{name}/settings/")
    expect(needed.locator("li", has_text="API_TOKEN")).to_contain_text("missing")
    _shoot_and_fit(page, "pages-settings")

    # A new webhook secret, behind a confirmation, shown once with its copy button.
    page.get_by_role("link", name="Make a new webhook secret…").click()
    expect(page.locator("#confirm-question")).to_contain_text("stops working at once")
    assert app_services.app_webhook_secret(app=App.objects.get(pk=app.pk)) == secret
    page.locator("#confirm-button").click()
    new = page.locator("#webhook-secret").text_content()
    assert re.fullmatch(r"[0-9a-f]{64}", new) and new != secret
    assert app_services.app_webhook_secret(app=App.objects.get(pk=app.pk)) == new
    assert _copy(page, "webhook-secret", "Copy secret") == new
    _shoot_and_fit(page, "pages-new-webhook-secret")

    # Delete: a wrong name refuses and keeps everything; the right one tears it down.
    page.goto(f"/apps/{name}/settings/")
    page.get_by_role("link", name=f"Delete {name}…").click()
    page.fill("input[name=confirm]", name.upper())
    page.get_by_role("button", name=f"Delete {name}").click()
    expect(page.locator("#delete-confirm .error")).to_contain_text(f"Type {name} exactly")
    assert App.objects.filter(name=name).exists()
    assert engine.service_get(app.service_name) is not None
    page.fill("input[name=confirm]", name)
    page.get_by_role("button", name=f"Delete {name}").click()
    expect(page).to_have_url(re.compile(r"/apps/$"))
    expect(page.locator(".msg-success")).to_contain_text(f"{name} was deleted")
    assert not App.objects.filter(name=name).exists()
    wait_for(lambda: engine.service_get(app.service_name) is None, 30, "the service gone")
