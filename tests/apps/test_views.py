from __future__ import annotations

import re
from datetime import timedelta
from unittest.mock import patch

import pytest
from django.utils import timezone

from apps.models import App
from deployments import services
from deployments.models import Deploy
from deployments.webhooks.models import WebhookDelivery
from secrets_vault import crypto
from secrets_vault.services import secret_set
from tests import base
from tests.factories import AppFactory, DeployFactory, ImageFactory, UserFactory

pytestmark = pytest.mark.django_db
SERVICES = "deployments.boundaries.engine.services_replicas"
cast = base.cast  # the fixed cast (tests/base.py) as this module's fixture

# Every role sees the app; is_staff alone does not (issue 11: it gave every app's control).
ALLOWED = [
    ("owner", 200),
    ("admin", 200),
    ("member", 200),
    ("viewer", 200),
    ("superuser", 200),
    ("staff", 404),
    ("outsider", 404),
]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_redis(monkeypatch):
    """The only patch: handing a deploy to RQ. Returns the ids it was asked to enqueue."""
    enqueued: list[int] = []
    monkeypatch.setattr(
        services, "deploy_enqueue", lambda *, deploy_id: enqueued.append(deploy_id) or True
    )
    return enqueued


def _went_live(app, commit: str, *, ago: int = 0) -> Deploy:
    image = ImageFactory(app=app, commit=commit)
    d = DeployFactory.create(
        app=app, commit=commit, image=image, status=Deploy.Status.DEPLOYING, spec={"image": "x"}
    )
    for old in app.deploys.filter(status=Deploy.Status.LIVE):
        old.mark_retired()
    assert d.mark_live()
    Deploy.objects.filter(pk=d.pk).update(finished=timezone.now() - timedelta(minutes=ago))
    d.refresh_from_db()
    return d


def _login_redirect(resp) -> bool:
    return resp.status_code == 302 and resp["Location"].startswith("/accounts/login/?next=")


# --- Apps list -------------------------------------------------------------------------------


def test_the_root_redirects_to_the_apps_list(client, cast):
    client.force_login(cast.owner)
    resp = client.get("/")
    assert resp.status_code == 302 and resp["Location"] == "/apps/"


def test_apps_list_needs_a_login(client, cast):
    assert _login_redirect(client.get("/apps/"))


@pytest.mark.parametrize(
    "who,expected",
    [
        ("owner", ["mine", "shop"]),
        ("member", ["shop"]),
        ("viewer", ["shop"]),
        ("admin", ["shop"]),
        ("outsider", []),
        ("staff", []),  # is_staff alone sees no app (it opens /admin/ and /django-rq/)
        ("superuser", ["mine", "other", "shop"]),
    ],
)
def test_apps_list_shows_only_the_apps_a_user_may_see(client, cast, who, expected):
    AppFactory(name="mine", owner=cast.owner)
    AppFactory(name="other", owner=UserFactory())
    client.force_login(getattr(cast, who))
    html = client.get("/apps/").content.decode()
    assert re.findall(r'data-app="([^"]+)"', html) == expected


def test_apps_list_shows_state_serving_release_latest_deploy_and_domains(client, cast):
    cast.app.domains = ["shop.example.com", "www.shop.example.com"]
    cast.app.save()
    live = _went_live(cast.app, "1" * 40, ago=60)
    building = DeployFactory(app=cast.app, commit="2" * 40, status=Deploy.Status.BUILDING)
    client.force_login(cast.owner)
    html = client.get("/apps/").content.decode()
    row = html.split('data-app="shop"')[1].split("</tr>")[0]
    # What serves it, and separately how its latest deploy is doing.
    assert 'data-state="serving"' in row
    assert f'<a href="/deploys/{live.pk}/">#{live.pk}</a> <code>{"1" * 7}</code>' in row
    assert "since 1" in row  # since 1 hour
    assert f'class="badge s-building">#{building.pk} building</a>' in row
    assert "shop.example.com" in row and "www.shop.example.com" in row
    # A deploy is running: the rows refresh themselves quickly.
    assert 'hx-trigger="every 3s"' in html


def test_apps_list_says_never_deployed(client, cast):
    client.force_login(cast.owner)
    html = client.get("/apps/").content.decode()
    row = html.split('data-app="shop"')[1].split("</tr>")[0]
    assert 'data-state="never deployed"' in row and '<span class="muted">nothing</span>' in row
    assert 'hx-trigger="every 20s"' in html


def test_apps_list_query_count_does_not_grow_with_apps(client, cast, django_assert_num_queries):
    client.force_login(cast.owner)
    _went_live(cast.app, "1" * 40)
    DeployFactory(app=cast.app, status=Deploy.Status.FAILED)
    # session, user, the apps with their deploy facts, the user's and groups' permissions
    # (may they create apps: apps.add_app)
    with django_assert_num_queries(5):
        resp = client.get("/apps/")
    assert resp.status_code == 200
    for i in range(5):
        app = AppFactory(name=f"app-{i}", owner=cast.owner)
        _went_live(app, f"{i}" * 40)
        DeployFactory(app=app, status=Deploy.Status.QUEUED)
    counts = {f"app-{i}_web": (1, 1) for i in range(5)}
    with (
        django_assert_num_queries(5),
        patch(SERVICES, autospec=True, return_value=counts) as engine_call,
    ):
        resp = client.get("/apps/")
    assert resp.content.decode().count('class="app"') == 6
    # Replicas of every app from one engine call, filtered by Koyra's service label.
    engine_call.assert_called_once_with("koyra.app")
    assert resp.content.decode().count(">1/1</span>") == 5


def test_apps_list_htmx_refresh_renders_only_the_rows(client, cast):
    client.force_login(cast.owner)
    resp = client.get("/apps/", headers={"HX-Request": "true"})
    html = resp.content.decode()
    assert html.lstrip().startswith('<div id="app-rows"')
    assert "<html" not in html
    assert "HX-Request" in resp["Vary"]


# --- New app ---------------------------------------------------------------------------------


def test_new_app_needs_a_login(client, cast):
    assert _login_redirect(client.get("/apps/new/"))
    assert _login_redirect(client.post("/apps/new/", {"name": "x"}))
    assert not App.objects.filter(name="x").exists()


def test_new_app_shows_the_webhook_url_and_secret_once(client, cast):
    client.force_login(cast.member)
    assert client.get("/apps/new/").status_code == 200
    resp = client.post(
        "/apps/new/",
        {
            "name": "blog",
            "repo_url": "https://github.com/acme/blog.git",
            "branch": "main",
            "trigger": "push",
            "domains": "blog.example.com, www.blog.example.com",
        },
    )
    assert resp.status_code == 200
    html = resp.content.decode()
    app = App.objects.get(name="blog")
    secret = crypto.decrypt(app.webhook_secret_token)
    assert f'<code id="webhook-secret">{secret}</code>' in html
    assert "http://" in html and "/webhooks/github/blog/" in html
    assert "no-store" in resp["Cache-Control"]
    assert app.owner == cast.member
    assert app.domains == ["blog.example.com", "www.blog.example.com"]
    # Never again: not on the app page.
    assert secret not in client.get("/apps/blog/").content.decode()


@pytest.mark.parametrize(
    "data,message",
    [
        ({"name": "Shop"}, "is not allowed"),
        ({"name": "new"}, "is reserved"),
        ({"name": "shop"}, "already exists"),
        ({"repo_url": "ext::sh -c touch% /tmp/pwned"}, "is not a git URL"),
        ({"branch": "main;rm -rf /"}, "is not a valid branch"),
        ({"domains": "http://x.com"}, "is not a valid host name"),
    ],
)
def test_new_app_refuses_what_create_app_refuses(client, cast, data, message):
    client.force_login(cast.owner)
    form = {
        "name": "blog",
        "repo_url": "https://github.com/acme/blog.git",
        "branch": "main",
        "trigger": "push",
        **data,
    }
    before = App.objects.count()
    resp = client.post("/apps/new/", form)
    assert resp.status_code == 200
    assert message in resp.content.decode().replace("&#x27;", "'")
    assert App.objects.count() == before


# --- App page --------------------------------------------------------------------------------


@pytest.mark.parametrize("who,status", ALLOWED)
def test_app_page_access(client, cast, who, status):
    client.force_login(getattr(cast, who))
    assert client.get("/apps/shop/").status_code == status


def test_app_page_needs_a_login(client, cast):
    assert _login_redirect(client.get("/apps/shop/"))


def test_app_page_of_an_unknown_app_is_404(client, cast):
    client.force_login(cast.superuser)
    assert client.get("/apps/nope/").status_code == 404


def test_app_page_shows_live_image_history_with_stage_timeline_secrets_and_deliveries(client, cast):
    first = _went_live(cast.app, "1" * 40, ago=10)
    live = _went_live(cast.app, "2" * 40, ago=5)
    Deploy.objects.filter(pk=live.pk).update(
        stages={
            "clone": {
                "started": "2025-01-01T00:00:00+00:00",
                "finished": "2025-01-01T00:00:02+00:00",
            },
            "build": {
                "started": "2025-01-01T00:00:02+00:00",
                "finished": "2025-01-01T00:00:32+00:00",
            },
            "push": {
                "started": "2025-01-01T00:00:32+00:00",
                "finished": "2025-01-01T00:00:35+00:00",
            },
            "rollout": {
                "started": "2025-01-01T00:00:35+00:00",
                "finished": "2025-01-01T00:00:45+00:00",
            },
        }
    )
    running = DeployFactory(
        app=cast.app,
        commit="3" * 40,
        status=Deploy.Status.BUILDING,
        stages={"clone": {"started": timezone.now().isoformat()}},
    )
    secret_set(app=cast.app, key="DATABASE_URL", value="postgres://u:hunter2@db/shop")
    WebhookDelivery.objects.create(
        app=cast.app,
        delivery_id="d-1",
        event="push",
        outcome="ignored",
        reason="ref refs/tags/v1 is not branch main",
    )
    client.force_login(cast.member)
    html = client.get("/apps/shop/").content.decode()
    assert live.image.pinned in html  # ref@digest
    assert f"127.0.0.1:5000/shop@sha256:{'b' * 64}" in html
    for d in (first, live, running):
        assert f'data-deploy="{d.pk}"' in html
    item = html.split(f'data-deploy="{live.pk}"')[1].split("</li>")[0]
    assert re.findall(r'data-stage="(\w+)"', item) == ["clone", "build", "push", "rollout"]
    assert "build 30s" in item and "total 45s" in item
    assert 'class="st-build done" style="flex-grow:3000"' in item
    running_item = html.split(f'data-deploy="{running.pk}"')[1].split("</li>")[0]
    assert "st-clone running" in running_item
    assert "<code>DATABASE_URL</code>" in html
    assert "hunter2" not in html
    assert "ref refs/tags/v1 is not branch main" in html
    # Buttons: deploy, redeploy, rollback to the previous release, cancel the running one.
    for action in ("deploy", "redeploy", "rollback", "cancel"):
        assert f'action="/apps/shop/{action}/"' in html
    assert f"Rollback to #{first.pk}" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'hx-trigger="every 2s"' in html


def test_app_page_without_a_live_deploy_offers_only_deploy(client, cast):
    client.force_login(cast.owner)
    html = client.get("/apps/shop/").content.decode()
    assert 'action="/apps/shop/deploy/"' in html
    for action in ("redeploy", "rollback", "cancel"):
        assert f'action="/apps/shop/{action}/"' not in html
    assert "No deploys yet" in html


def test_app_page_escapes_what_users_and_webhooks_wrote(client, cast):
    DeployFactory(app=cast.app, status=Deploy.Status.FAILED, error="<script>alert(1)</script>")
    WebhookDelivery.objects.create(
        app=cast.app,
        delivery_id="d-2",
        event="push",
        outcome="refused",
        reason="<img src=x onerror=alert(2)>",
    )
    client.force_login(cast.owner)
    html = client.get("/apps/shop/").content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html


def test_app_page_htmx_refresh_renders_only_the_overview(client, cast):
    client.force_login(cast.owner)
    resp = client.get("/apps/shop/", headers={"HX-Request": "true"})
    html = resp.content.decode()
    assert html.lstrip().startswith('<div id="overview"')
    assert "<html" not in html and "Webhook deliveries" not in html


# --- Buttons ---------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["deploy", "redeploy"])
def test_buttons_are_post_only(client, cast, action):
    client.force_login(cast.owner)
    assert client.get(f"/apps/shop/{action}/").status_code == 405


@pytest.mark.parametrize("action", ["rollback", "cancel"])
def test_a_get_of_rollback_or_cancel_only_asks(client, cast, action):
    # GET is their confirmation page (issue 15): it changes nothing; POST does it.
    _went_live(cast.app, "1" * 40, ago=10)
    _went_live(cast.app, "2" * 40, ago=5)
    queued = DeployFactory(app=cast.app, commit="3" * 40)
    before = list(Deploy.objects.order_by("pk").values_list("pk", "status", "cancel_requested"))
    client.force_login(cast.owner)
    resp = client.get(f"/apps/shop/{action}/")
    assert resp.status_code == 200
    assert f'<form method="post" action="/apps/shop/{action}/">' in resp.content.decode()
    after = list(Deploy.objects.order_by("pk").values_list("pk", "status", "cancel_requested"))
    assert after == before and queued.pk in [pk for pk, *_ in after]


@pytest.mark.parametrize("action", ["deploy", "redeploy", "rollback", "cancel"])
def test_buttons_need_a_login(client, cast, action):
    assert _login_redirect(client.post(f"/apps/shop/{action}/"))
    assert not Deploy.objects.exists()


@pytest.mark.parametrize("who,status", [("outsider", 404), ("staff", 404), ("viewer", 403)])
@pytest.mark.parametrize("action", ["deploy", "redeploy", "rollback", "cancel"])
def test_buttons_are_refused_without_the_deploy_role(client, cast, action, who, status):
    queued = DeployFactory(app=cast.app)
    client.force_login(getattr(cast, who))
    assert client.post(f"/apps/shop/{action}/").status_code == status
    assert list(Deploy.objects.all()) == [queued]
    queued.refresh_from_db()
    assert queued.status == Deploy.Status.QUEUED


def test_buttons_check_the_csrf_token(cast):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(cast.owner)
    assert csrf_client.post("/apps/shop/deploy/").status_code == 403
    assert not Deploy.objects.exists()


@pytest.mark.parametrize("who", ["owner", "admin", "member", "superuser"])
def test_deploy_button_queues_a_manual_deploy(
    client, cast, who, _no_redis, django_capture_on_commit_callbacks
):
    client.force_login(getattr(cast, who))
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post("/apps/shop/deploy/")
    deploy = Deploy.objects.get()
    assert (deploy.app, deploy.trigger, deploy.status) == (cast.app, "manual", Deploy.Status.QUEUED)
    assert deploy.commit == ""  # the branch head, resolved when it runs
    assert resp.status_code == 302 and resp["Location"] == f"/deploys/{deploy.pk}/"
    assert _no_redis == [deploy.pk]
    page = client.get(resp["Location"]).content.decode()
    assert f"Deploy #{deploy.pk} queued." in page


def test_redeploy_button_reuses_the_live_deploy(client, cast):
    live = _went_live(cast.app, "1" * 40)
    client.force_login(cast.owner)
    resp = client.post("/apps/shop/redeploy/")
    new = Deploy.objects.exclude(pk=live.pk).get()
    assert (new.trigger, new.source, new.commit) == ("redeploy", live, live.commit)
    assert resp["Location"] == f"/deploys/{new.pk}/"


def test_rollback_button_goes_back_to_the_previous_release(client, cast):
    first = _went_live(cast.app, "1" * 40, ago=10)
    second = _went_live(cast.app, "2" * 40, ago=5)
    client.force_login(cast.member)
    resp = client.post("/apps/shop/rollback/")
    new = Deploy.objects.exclude(pk__in=[first.pk, second.pk]).get()
    assert (new.trigger, new.source, new.commit) == ("rollback", first, first.commit)
    assert resp["Location"] == f"/deploys/{new.pk}/"


@pytest.mark.parametrize(
    "action,message",
    [
        ("redeploy", "shop has no live deploy to redeploy; deploy it first."),
        ("rollback", "shop has no earlier live release to roll back to."),
    ],
)
def test_a_refused_button_is_a_message_not_an_error(client, cast, action, message):
    client.force_login(cast.owner)
    resp = client.post(f"/apps/shop/{action}/", follow=True)
    assert resp.status_code == 200
    assert resp.redirect_chain == [("/apps/shop/", 302)]
    assert f'<li class="msg msg-error">{message}</li>' in resp.content.decode()
    assert not Deploy.objects.exists()


def test_cancel_button_cancels_the_queued_deploy(client, cast):
    queued = DeployFactory(app=cast.app)
    client.force_login(cast.owner)
    resp = client.post("/apps/shop/cancel/")
    queued.refresh_from_db()
    assert queued.status == Deploy.Status.CANCELLED
    assert resp["Location"] == f"/deploys/{queued.pk}/"


def test_cancel_button_asks_a_running_deploy_to_stop(client, cast):
    running = DeployFactory(app=cast.app, status=Deploy.Status.BUILDING)
    client.force_login(cast.owner)
    client.post("/apps/shop/cancel/")
    running.refresh_from_db()
    assert running.cancel_requested and running.status == Deploy.Status.BUILDING


def test_cancel_with_nothing_to_cancel_says_so(client, cast):
    client.force_login(cast.owner)
    resp = client.post("/apps/shop/cancel/", follow=True)
    assert "shop has no queued or running deploy to cancel." in resp.content.decode()
