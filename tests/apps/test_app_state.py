"""An app's state at a glance (issue 15): what serves it (release, commit, since, replicas from
the Swarm) apart from how its latest deploy went, the same on the list and the app page."""

from __future__ import annotations

import html as htmllib
import re
from unittest.mock import patch

import pytest

from deployments import selectors
from deployments.boundaries import engine
from deployments.models import Deploy
from tests import base
from tests.factories import AppFactory, DeployFactory, live_deploy

pytestmark = pytest.mark.django_db
cast = base.cast
SERVICES = "deployments.boundaries.engine.services_replicas"
Status = Deploy.Status
HOSTILE = '<script>alert("x")</script> & \'quoted\' "double"'


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Links to apps: plain http on port 80, whatever the environment running the tests says.
    settings.KOYRA_ACME_EMAIL, settings.KOYRA_HTTP_PORT = "", 80


def _row(html: str, name: str = "shop") -> str:
    return html.split(f'data-app="{name}"')[1].split("</tr>")[0]


def _list(client, user, counts=None, error=""):
    client.force_login(user)
    effect = engine.EngineError(error) if error else None
    with patch(SERVICES, autospec=True, return_value=counts or {}, side_effect=effect):
        resp = client.get("/apps/")
    assert resp.status_code == 200
    return resp.content.decode()


# --- The rules, for every combination --------------------------------------------------------


def _state(*, live: bool, latest: str, replicas) -> selectors.AppState:
    serving = selectors.Serving(7, "1" * 40, "", None, ["shop.example.com"]) if live else None
    latest_id = None if not latest else (7 if latest == Status.LIVE else 9)
    return selectors.AppState(serving, latest_id, latest, "", replicas)


@pytest.mark.parametrize("latest", [*Status.values, ""])
@pytest.mark.parametrize("replicas", [None, (2, 2), (1, 2), (0, 2), (0, 0), (3, 3)])
def test_a_live_release_decides_the_state_whatever_the_latest_deploy(latest, replicas):
    st = _state(live=True, latest=latest, replicas=replicas)
    expected = {None: "serving", (2, 2): "serving", (3, 3): "serving", (1, 2): "degraded"}
    assert st.state == expected.get(replicas, "down")
    assert st.latest_failed is (latest == Status.FAILED)
    warned = " ".join(st.warnings)
    assert ("latest deploy #9 failed; #7 keeps serving" in warned) is (latest == Status.FAILED)
    assert ("1 of 2 replicas healthy" in warned) is (replicas == (1, 2))
    assert ("no task of its service runs" in warned) is (replicas == (0, 0))
    assert st.url == "http://shop.example.com"


@pytest.mark.parametrize("replicas", [None, (0, 0), (1, 1)])
@pytest.mark.parametrize("latest", [*Status.values, ""])
def test_without_a_live_release_the_latest_deploy_tells(latest, replicas):
    if latest == Status.LIVE:
        return  # a live latest deploy is a live release: the test above
    st = _state(live=False, latest=latest, replicas=replicas)
    if latest in Deploy.PENDING:
        assert st.state == "deploying"
    elif latest == Status.FAILED:
        assert st.state == "failed"
    else:
        assert st.state == ("not serving" if latest else "never deployed")
    assert st.warnings == [] and st.url == "" and not st.latest_failed


@pytest.mark.parametrize(
    "acme,http,https,url",
    [
        ("", 80, 443, "http://a.example.com"),
        ("", 8080, 443, "http://a.example.com:8080"),
        ("ops@example.com", 80, 443, "https://a.example.com"),
        ("ops@example.com", 80, 8443, "https://a.example.com:8443"),
    ],
)
def test_the_link_is_the_first_domain_as_traefik_serves_it(settings, acme, http, https, url):
    settings.KOYRA_ACME_EMAIL, settings.KOYRA_HTTP_PORT = acme, http
    settings.KOYRA_HTTPS_PORT = https
    assert selectors.host_url("a.example.com") == url


# --- The list --------------------------------------------------------------------------------


def test_a_failed_latest_deploy_leaves_the_app_serving_with_a_warning(client, cast):
    live = live_deploy(
        cast.app, domains=["shop.example.com", "m.shop.example.com"], message="v1 ok"
    )
    failed = DeployFactory(app=cast.app, commit="2" * 40, status=Status.FAILED, error="unhealthy")
    row = _row(_list(client, cast.viewer, counts={"shop_web": (2, 2)}))
    assert 'data-state="serving"' in row
    assert 'class="badge a-serving" data-state="serving">serving</span>' in row
    assert (
        f'<a href="/deploys/{failed.pk}/">latest deploy #{failed.pk} failed; #{live.pk} keeps '
        "serving</a>"
    ) in row
    assert f'class="badge s-failed">#{failed.pk} failed</a>' in row
    assert f"#{live.pk}</a> <code>1111111</code>" in row and "v1 ok" in row
    assert ">2/2</span>" in row
    # The running app, at its first domain (the live release's, as Traefik routes it).
    assert '<a href="http://shop.example.com" class="app-link"' in row
    assert "m.shop.example.com" in row


def test_an_app_with_nothing_live_and_a_failed_deploy_reads_failed(client, cast):
    DeployFactory(app=cast.app, status=Status.FAILED)
    row = _row(_list(client, cast.owner, counts={}))
    assert 'data-state="failed"' in row and "keeps serving" not in row
    assert "app-link" not in row


def test_unhealthy_replicas_read_degraded_or_down(client, cast):
    live_deploy(cast.app)
    other = AppFactory(name="zeta", owner=cast.owner)
    live_deploy(other)
    html = _list(client, cast.owner, counts={"shop_web": (1, 3), "zeta_web": (0, 2)})
    assert 'data-state="degraded"' in _row(html) and "1 of 3 replicas healthy" in _row(html)
    assert 'data-state="down"' in _row(html, "zeta") and ">0/2</span>" in _row(html, "zeta")


@pytest.mark.parametrize(
    "error",
    ["Cannot reach the Docker engine (connection refused). Start dockerd", "Cannot list services"],
)
def test_an_unreachable_engine_shows_question_marks_never_an_error(client, cast, error):
    live_deploy(cast.app)
    DeployFactory(app=cast.app, status=Status.FAILED)
    html = _list(client, cast.owner, error=error)
    row = _row(html)
    assert 'class="replicas muted" title="the Docker engine did not answer' in row and ">?<" in row
    assert 'data-state="serving"' in row  # the record still says what serves it
    assert "keeps serving" in row


def test_commit_subjects_are_escaped_and_truncated_on_the_list(client, cast):
    live_deploy(cast.app, message=f"{HOSTILE}{'y' * 200}\nbody line")
    row = _row(_list(client, cast.owner))
    assert "<script>" not in row and "body line" not in row
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;quoted&#x27;" in row
    shown = re.search(r'<span class="subject" title="[^"]*">([^<]*)</span>', row)
    assert shown is not None and len(htmllib.unescape(shown.group(1))) == 60


# --- The app page ----------------------------------------------------------------------------


def test_the_app_page_shows_what_serves_apart_from_the_latest_deploy(client, cast):
    live = live_deploy(cast.app, domains=["shop.example.com"], message=f"{HOSTILE}\nbody")
    Deploy.objects.filter(pk=live.pk).update(commit_author="Ann <b>Dev</b>")
    failed = DeployFactory(app=cast.app, commit="2" * 40, status=Status.FAILED)
    client.force_login(cast.viewer)
    with patch(SERVICES, autospec=True, return_value={"shop_web": (1, 2)}) as engine_call:
        page = client.get("/apps/shop/").content.decode()
    engine_call.assert_called_once_with("koyra.app")
    state = page.split('id="app-state">')[1].split("</span>")[0]
    assert 'data-state="degraded"' in state
    assert f"latest deploy #{failed.pk} failed; #{live.pk} keeps serving" in page
    assert "1 of 2 replicas healthy" in page
    assert 'id="app-link" href="http://shop.example.com"' in page
    domains = page.split('id="domains">')[1].split("</dd>")[0]
    assert (
        '<a href="http://shop.example.com"' in domains and "routed by the live release" in domains
    )
    assert f'class="badge s-failed">#{failed.pk} failed</a>' in page
    assert "<script>" not in page and "<b>Dev</b>" not in page
    assert "by Ann &lt;b&gt;Dev&lt;/b&gt;" in page
    # The history row of the live deploy names its commit.
    item = page.split(f'data-deploy="{live.pk}"')[1].split("</li>")[0]
    assert "&lt;script&gt;alert(&quot;x&quot;)" in item and "body" not in item


def test_the_app_page_without_an_engine_still_renders(client, cast):
    live_deploy(cast.app)
    client.force_login(cast.owner)
    resp = client.get("/apps/shop/")  # the default for unit tests: the engine does not answer
    assert resp.status_code == 200
    assert ">?</span>" in resp.content.decode().split('id="replicas">')[1]


def test_the_deploy_page_shows_the_escaped_commit_message(client, cast):
    d = DeployFactory(
        app=cast.app,
        status=Status.FAILED,
        commit_message=f"subject {HOSTILE}\n\nthe <i>body</i>",
        commit_author="Mallory <img src=x onerror=alert(1)>",
    )
    client.force_login(cast.viewer)
    page = client.get(f"/deploys/{d.pk}/").content.decode()
    facts = page.split('id="commit-message">')[1].split("</dd>")[0]
    assert "<script>" not in facts and "<i>body</i>" not in facts and "<img" not in facts
    assert "subject &lt;script&gt;" in facts and "the &lt;i&gt;body&lt;/i&gt;" in facts
    assert "by Mallory &lt;img src=x onerror=alert(1)&gt;" in facts


# --- No stale banners ------------------------------------------------------------------------


@pytest.fixture
def _no_redis(monkeypatch):
    from deployments import services

    monkeypatch.setattr(services, "deploy_enqueue", lambda *, deploy_id: True)


@pytest.mark.usefixtures("_no_redis")
def test_the_queued_banner_shows_while_the_deploy_runs(client, cast):
    client.force_login(cast.member)
    resp = client.post("/apps/shop/deploy/", follow=True)
    deploy = cast.app.deploys.get()
    page = resp.content.decode()
    assert (
        f'<ul class="messages" id="progress"><li class="msg msg-success progress">Deploy '
        f"#{deploy.pk} queued.</li></ul>"
    ) in page


@pytest.mark.usefixtures("_no_redis")
@pytest.mark.parametrize("status", Deploy.FINISHED)
def test_the_queued_banner_is_left_out_once_the_deploy_finished(client, cast, status):
    client.force_login(cast.member)
    resp = client.post("/apps/shop/deploy/")
    deploy = cast.app.deploys.get()
    Deploy.objects.filter(pk=deploy.pk).update(status=status, error="boom")  # a fast failure
    page = client.get(resp["Location"]).content.decode()
    assert "queued." not in page and 'id="progress"' not in page
    assert f'data-status="{status}" data-finished' in page
