"""An app's settings after creation: app_update (the one service), `update_app`, `create_app
--workflow`, the settings page, and what the webhook pages say to select."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from apps import services, validators
from apps.models import App
from tests import base
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db
cast = base.cast


def _call(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _fields(app: App) -> tuple:
    app.refresh_from_db()
    return (app.branch, app.trigger, app.workflows, app.domains)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Tests", "CI / build (linux)", "Déploiement", "x", "a" * 100, "Build, lint & test"]
)
def test_workflow_names_as_github_shows_them_are_valid(name):
    validators.validate_workflow_name(name)


@pytest.mark.parametrize(
    "name", ["", " ", " Tests", "Tests ", "a" * 101, "Te\nsts", "Te\x00sts", "\u2028", "a\u200bb"]
)
def test_a_workflow_name_that_is_empty_long_or_not_printable_is_refused(name):
    with pytest.raises(ValidationError, match="Workflow name"):
        validators.validate_workflow_name(name)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Tests", "must be a list"),
        (["Tests", "Tests"], "listed twice"),
        ([f"w{i}" for i in range(21)], "At most 20"),
        ([7], "Workflow name"),
    ],
)
def test_a_workflows_value_that_is_not_a_list_of_distinct_names_is_refused(value, message):
    with pytest.raises(ValidationError, match=message):
        validators.validate_workflows(value)


# --- app_update -----------------------------------------------------------------------------


def test_app_update_changes_what_it_is_given_and_keeps_the_rest():
    app = AppFactory(name="shop", branch="main", domains=["shop.example.com"])
    services.app_update(app=app, trigger="workflow_run", workflows=[" Tests ", "Build"])
    assert _fields(app) == ("main", "workflow_run", ["Tests", "Build"], ["shop.example.com"])
    services.app_update(app=app, branch="release/v2", domains=[])
    assert _fields(app) == ("release/v2", "workflow_run", ["Tests", "Build"], [])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"branch": "a..b"}, "not a valid branch"),
        ({"trigger": "cron"}, "not one of"),
        ({"workflows": ["Tests"]}, "only gate deploys of an app with trigger workflow_run"),
        ({"workflows": ["Te\tsts"], "trigger": "workflow_run"}, "Workflow name"),
        ({"domains": ["http://x.com"]}, "not a valid host name"),
        ({"domains": ["blog.example.com"]}, "already routes to the app 'blog'"),
    ],
)
def test_app_update_refuses_bad_settings_and_changes_nothing(changes, message):
    AppFactory(name="blog", domains=["blog.example.com"])
    app = AppFactory(name="shop", branch="main")
    before = _fields(app)
    with pytest.raises(ValidationError, match=message):
        services.app_update(app=app, branch=changes.pop("branch", "dev"), **changes)
    assert _fields(app) == before


def test_switching_a_gated_app_to_push_needs_its_workflows_cleared():
    app = AppFactory(name="shop", trigger="workflow_run", workflows=["Tests"])
    with pytest.raises(ValidationError, match="clear the workflows"):
        services.app_update(app=app, trigger="push")
    services.app_update(app=app, trigger="push", workflows=[])
    assert _fields(app)[1:3] == ("push", [])


# --- commands -------------------------------------------------------------------------------


def test_create_app_takes_workflows_and_says_which_events_to_select():
    out = _call(
        "create_app",
        "shop",
        "--repo",
        "https://github.com/acme/shop.git",
        "--trigger",
        "workflow_run",
        "--workflow",
        "Tests",
        "--workflow",
        "Build",
    )
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert App.objects.get(name="shop").workflows == ["Tests", "Build"]
    assert lines["webhook_events"] == "Workflow runs (workflow_run)"
    assert "application/x-www-form-urlencoded" in lines["webhook_content_type"]
    out = _call("create_app", "blog", "--repo", "https://github.com/acme/blog.git")
    assert "webhook_events: Just the push event (push)" in out


def test_create_app_refuses_workflows_for_a_push_app():
    with pytest.raises(CommandError, match="trigger workflow_run"):
        _call("create_app", "shop", "--repo", "https://github.com/a/b", "--workflow", "Tests")
    assert not App.objects.exists()


def test_update_app_sets_replaces_and_clears():
    app = AppFactory(name="shop", domains=["a.example.com"])
    out = _call(
        "update_app", "shop", "--trigger", "workflow_run", "--workflow", "Tests", "--branch", "dev"
    )
    assert "workflows: Tests" in out and "webhook_events: Workflow runs" in out
    assert _fields(app) == ("dev", "workflow_run", ["Tests"], ["a.example.com"])
    _call("update_app", "shop", "--domain", "b.example.com", "--domain", "c.example.com")
    assert _fields(app)[3] == ["b.example.com", "c.example.com"]
    _call("update_app", "shop", "--clear-domains", "--clear-workflows")
    assert _fields(app) == ("dev", "workflow_run", [], [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--branch", "x"], "No app named 'nope'"),
        (["shop"], "Nothing to change"),
        (["shop", "--domain", "a.example.com", "--clear-domains"], "not both"),
        (["shop", "--workflow", "Tests"], "trigger workflow_run"),
        (["shop", "--branch", "$(id)"], "not a valid branch"),
    ],
)
def test_update_app_refuses_with_a_clear_message_and_changes_nothing(args, message):
    app = AppFactory(name="shop")
    before = _fields(app)
    with pytest.raises(CommandError, match=message):
        _call("update_app", *args)
    assert _fields(app) == before


# --- the app page ---------------------------------------------------------------------------


def _post(client, user, name="shop", **data):
    client.force_login(user)
    form = {"branch": "main", "trigger": "push", "workflows": "", "domains": "", **data}
    return client.post(f"/apps/{name}/settings/", form)


def test_the_settings_page_shows_the_form_and_the_app_page_the_events_to_select(client, cast):
    services.app_update(app=cast.app, trigger="workflow_run", workflows=["Tests", "Build"])
    client.force_login(cast.owner)
    html = client.get("/apps/shop/").content.decode()
    assert 'href="/apps/shop/settings/"' in html
    assert "Workflow runs (workflow_run)" in html
    assert "application/x-www-form-urlencoded" in html
    html = client.get("/apps/shop/settings/").content.decode()
    assert 'action="/apps/shop/settings/"' in html
    assert ">Tests\nBuild</textarea>" in html
    assert '<option value="workflow_run" selected>' in html


@pytest.mark.parametrize("who", ["owner", "admin", "superuser"])
def test_the_settings_form_saves_through_app_update(client, cast, who):
    resp = _post(
        client,
        getattr(cast, who),
        trigger="workflow_run",
        workflows="Tests\r\nCI / build\r\n\r\n",
        domains="shop.example.com, www.shop.example.com",
    )
    assert resp.status_code == 302 and resp["Location"] == "/apps/shop/settings/"
    assert _fields(cast.app) == (
        "main",
        "workflow_run",
        ["Tests", "CI / build"],
        ["shop.example.com", "www.shop.example.com"],
    )


def test_a_refused_setting_is_shown_inline_and_nothing_changes(client, cast):
    before = _fields(cast.app)
    resp = _post(client, cast.owner, workflows="Tests", branch="dev")  # trigger push
    assert resp.status_code == 400
    assert _fields(cast.app) == before
    page = resp.content.decode()
    assert "Settings not saved" in page and "trigger workflow_run" in page
    assert 'value="dev"' in page and ">Tests</textarea>" in page  # what was typed, kept


def test_the_settings_form_is_404_for_an_outsider_and_needs_a_login(client, cast):
    before = _fields(cast.app)
    assert _post(client, cast.outsider, branch="dev").status_code == 404
    assert _post(client, cast.staff, branch="dev").status_code == 404
    # Settings are the admin's: a deployer or a viewer sees the app but may not change them.
    assert _post(client, cast.member, branch="dev").status_code == 403
    assert _post(client, cast.viewer, branch="dev").status_code == 403
    client.logout()
    resp = client.post("/apps/shop/settings/", {"branch": "dev", "trigger": "push"})
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")
    assert _fields(cast.app) == before


def test_the_created_page_says_which_events_and_that_either_content_type_works(client, cast):
    client.force_login(cast.owner)
    resp = client.post(
        "/apps/new/",
        {
            "name": "ci",
            "repo_url": "https://github.com/a/ci",
            "branch": "main",
            "trigger": "workflow_run",
        },
    )
    html = resp.content.decode()
    assert "<strong>Workflow runs</strong>" in html
    assert "application/json" in html and "application/x-www-form-urlencoded" in html


def test_the_admin_edits_workflows_with_the_same_validation(admin_client):
    app = AppFactory(name="shop")
    form = {
        "repo_url": app.repo_url,
        "branch": "main",
        "trigger": "push",
        "workflows": '["Tests"]',
        "domains": "[]",
        "memberships-TOTAL_FORMS": "0",  # the roles inline (apps.admin), left empty
        "memberships-INITIAL_FORMS": "0",
    }
    resp = admin_client.post(f"/admin/apps/app/{app.pk}/change/", form)
    assert resp.status_code == 200 and "trigger workflow_run" in resp.content.decode()
    resp = admin_client.post(
        f"/admin/apps/app/{app.pk}/change/", {**form, "trigger": "workflow_run"}
    )
    assert resp.status_code == 302
    app.refresh_from_db()
    assert app.workflows == ["Tests"]


# --- the repository a delivery must name ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "full_name"),
    [
        ("git@github.com:acme/shop.git", "acme/shop"),
        ("git@github.com:acme/shop", "acme/shop"),
        ("ssh://git@github.com/acme/shop.git", "acme/shop"),
        ("ssh://git@github.com:22/acme/shop.git", "acme/shop"),
        ("https://github.com/acme/shop.git", "acme/shop"),
        ("https://github.com/acme/shop", "acme/shop"),
        ("https://github.com/acme/shop/", "acme/shop"),
        ("https://github.com/acme/shop.git/", "acme/shop"),
        ("https://github.com/Acme/Shop.GitHub.io", "Acme/Shop.GitHub.io"),
        ("https://github.com/acme/my.git.tools.git", "acme/my.git.tools"),
        ("file:///srv/git/acme/shop", "acme/shop"),  # a test repository: its last two segments
        ("file:///shop", ""),
    ],
)
def test_repo_full_name_reads_every_url_form(url, full_name):
    assert App(repo_url=url).repo_full_name == full_name
