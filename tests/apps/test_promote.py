"""Promote any kept release, roll back and cancel: each behind a confirmation page (GET) that
names the release; POST with the CSRF token does it (issue 15)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from deployments import services
from deployments.models import Deploy
from tests import base
from tests.factories import AppFactory, DeployFactory, ImageFactory

pytestmark = pytest.mark.django_db
cast = base.cast

# (who, may see the app, may deploy): every member of the Cast.
ROLES = [
    ("owner", True, True),
    ("admin", True, True),
    ("member", True, True),
    ("superuser", True, True),
    ("viewer", True, False),
    ("staff", False, False),
    ("outsider", False, False),
]


@pytest.fixture(autouse=True)
def _no_redis(monkeypatch):
    monkeypatch.setattr(services, "deploy_enqueue", lambda *, deploy_id: True)


def _went_live(app, commit: str, *, ago: int, subject: str = "", **extra) -> Deploy:
    image = extra.pop("image", None) or ImageFactory(app=app, commit=commit)
    d = DeployFactory.create(
        app=app,
        commit=commit,
        image=image,
        status=Deploy.Status.DEPLOYING,
        spec={"image": "x"},
        commit_message=f"{subject}\n\nthe body" if subject else "",
        **extra,
    )
    for old in app.deploys.filter(status=Deploy.Status.LIVE):
        old.mark_retired()
    assert d.mark_live()
    Deploy.objects.filter(pk=d.pk).update(finished=timezone.now() - timedelta(minutes=ago))
    d.refresh_from_db()
    return d


@pytest.fixture
def releases(cast):
    """Three builds went live in turn: #first and #second are kept, #third is live."""
    first = _went_live(cast.app, "1" * 40, ago=30, subject="First <b>release</b>")
    second = _went_live(cast.app, "2" * 40, ago=20, subject="Second release")
    third = _went_live(cast.app, "3" * 40, ago=10, subject="Third release")
    return first, second, third


def _promote_links(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'href="/apps/shop/promote/(\d+)/"', html)}


def _login(who: str, cast) -> Client:
    client = Client()
    client.force_login(getattr(cast, who))
    return client


@pytest.mark.parametrize(("who", "sees", "deploys"), ROLES)
def test_the_history_offers_promote_on_every_kept_release_but_the_live_one(
    cast, releases, who, sees, deploys
):
    first, second, _third = releases
    resp = _login(who, cast).get("/apps/shop/")
    assert resp.status_code == (200 if sees else 404)
    if sees:
        assert _promote_links(resp.content.decode()) == (
            {first.pk, second.pk} if deploys else set()
        )


def test_after_a_rollback_the_newer_release_is_offered_too(client, cast, releases):
    first, second, third = releases
    _went_live(cast.app, first.commit, ago=5, trigger="rollback", source=first, image=first.image)
    client.force_login(cast.member)
    html = client.get("/apps/shop/").content.decode()
    # #first is live again (through the rollback): the others, older and newer, are offered.
    assert _promote_links(html) == {second.pk, third.pk}


def test_pruned_failed_and_never_live_deploys_are_not_offered(client, cast, releases):
    first, second, _third = releases
    first.image.deleted = timezone.now()
    first.image.save()
    failed = DeployFactory(app=cast.app, commit="4" * 40, status=Deploy.Status.FAILED)
    queued = DeployFactory(app=cast.app, commit="5" * 40)
    client.force_login(cast.owner)
    html = client.get("/apps/shop/").content.decode()
    assert _promote_links(html) == {second.pk}
    for d, says in [
        (first, "is not a kept release"),
        (failed, "is not a kept release"),
        (queued, "is not a kept release"),
    ]:
        resp = client.get(f"/apps/shop/promote/{d.pk}/", follow=True)
        assert resp.redirect_chain == [("/apps/shop/", 302)]
        assert f"Deploy #{d.pk} {says}" in resp.content.decode()
    n = Deploy.objects.count()
    resp = client.post(f"/apps/shop/promote/{first.pk}/", follow=True)
    assert "was not kept" in resp.content.decode()
    resp = client.post(f"/apps/shop/promote/{failed.pk}/", follow=True)
    assert "never went live" in resp.content.decode()
    assert Deploy.objects.count() == n


def test_the_confirmation_names_the_release_and_what_it_replaces(client, cast, releases):
    first, _second, third = releases
    client.force_login(cast.member)
    n = Deploy.objects.count()
    resp = client.get(f"/apps/shop/promote/{first.pk}/")
    html = resp.content.decode()
    when = first.finished.strftime("%Y-%m-%d %H:%M")
    assert resp.status_code == 200
    assert (
        f"Promote #{first.pk} (commit 1111111, \u201cFirst &lt;b&gt;release&lt;/b&gt;\u201d, "
        f"deployed at {when} UTC) to live? It replaces #{third.pk}."
    ) in html
    assert "the body" not in html  # the subject, not the message's body
    assert f'<form method="post" action="/apps/shop/promote/{first.pk}/">' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert Deploy.objects.count() == n  # a look changes nothing


def test_posting_the_confirmation_promotes_the_release(client, cast, releases):
    first, second, third = releases
    client.force_login(cast.member)
    resp = client.post(f"/apps/shop/promote/{second.pk}/")
    new = Deploy.objects.exclude(pk__in=[first.pk, second.pk, third.pk]).get()
    assert (new.trigger, new.source, new.commit, new.status) == (
        "rollback",
        second,
        second.commit,
        Deploy.Status.QUEUED,
    )
    assert resp["Location"] == f"/deploys/{new.pk}/"


def test_promoting_a_rollback_row_promotes_its_release(client, cast, releases):
    first = releases[0]
    back = _went_live(cast.app, first.commit, ago=5, trigger="rollback", source=first)
    _went_live(cast.app, "6" * 40, ago=1)
    client.force_login(cast.owner)
    html = client.get(f"/apps/shop/promote/{back.pk}/").content.decode()
    assert f"Promote #{first.pk} (commit 1111111" in html
    client.post(f"/apps/shop/promote/{back.pk}/")
    assert Deploy.objects.order_by("-pk").first().source == first


@pytest.mark.parametrize(("who", "sees", "deploys"), ROLES)
@pytest.mark.parametrize("method", ["get", "post"])
def test_promote_answers_by_role(cast, releases, who, sees, deploys, method):
    first = releases[0]
    n = Deploy.objects.count()
    resp = getattr(_login(who, cast), method)(f"/apps/shop/promote/{first.pk}/")
    expected = {"get": 200, "post": 302}[method] if deploys else 403 if sees else 404
    assert resp.status_code == expected
    assert Deploy.objects.count() == n + (1 if deploys and method == "post" else 0)


def test_promote_needs_a_login_and_the_csrf_token(cast, releases):
    url = f"/apps/shop/promote/{releases[0].pk}/"
    anonymous = Client()
    for method in ("get", "post"):
        resp = getattr(anonymous, method)(url)
        assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(cast.owner)
    n = Deploy.objects.count()
    assert strict.post(url).status_code == 403
    assert Deploy.objects.count() == n


def test_another_apps_deploy_or_an_unknown_one_is_404(client, cast, releases):
    other = AppFactory(name="blog")
    theirs = _went_live(other, "7" * 40, ago=1)
    client.force_login(cast.superuser)  # may everything, yet not mix two apps' deploys
    n = Deploy.objects.count()
    for pk in (theirs.pk, 999999):
        assert client.get(f"/apps/shop/promote/{pk}/").status_code == 404
        assert client.post(f"/apps/shop/promote/{pk}/").status_code == 404
    assert Deploy.objects.count() == n


# --- the one-click Rollback and Cancel ask first too -----------------------------------------


def test_the_app_page_buttons_lead_to_confirmations(client, cast, releases):
    DeployFactory(app=cast.app, commit="8" * 40)  # queued: Cancel shows
    client.force_login(cast.member)
    html = client.get("/apps/shop/").content.decode()
    assert '<form method="get" action="/apps/shop/rollback/">' in html
    assert '<form method="get" action="/apps/shop/cancel/">' in html


def test_rollback_asks_first_naming_the_release(client, cast, releases):
    _first, second, third = releases
    client.force_login(cast.member)
    n = Deploy.objects.count()
    html = client.get("/apps/shop/rollback/").content.decode()
    assert f"Roll back to #{second.pk} (commit 2222222, \u201cSecond release\u201d" in html
    assert f"It replaces #{third.pk}." in html
    assert '<form method="post" action="/apps/shop/rollback/">' in html
    assert Deploy.objects.count() == n
    client.post("/apps/shop/rollback/")
    assert Deploy.objects.order_by("-pk").first().source == second


def test_rollback_with_nothing_to_go_back_to_says_so_on_get(client, cast):
    client.force_login(cast.owner)
    resp = client.get("/apps/shop/rollback/", follow=True)
    assert resp.redirect_chain == [("/apps/shop/", 302)]
    assert "shop has no earlier live release to roll back to." in resp.content.decode()


def test_cancel_asks_first_naming_every_deploy_it_stops(client, cast, releases):
    third = releases[2]
    running = DeployFactory(app=cast.app, commit="8" * 40, status=Deploy.Status.BUILDING)
    queued = DeployFactory(app=cast.app, commit="9" * 40)
    client.force_login(cast.member)
    html = client.get("/apps/shop/cancel/").content.decode()
    assert (
        f"Cancel #{running.pk} (building, commit 8888888), #{queued.pk} (queued, commit "
        f"9999999)? #{third.pk} stays live."
    ) in html
    assert '<form method="post" action="/apps/shop/cancel/">' in html
    queued.refresh_from_db()
    running.refresh_from_db()
    assert queued.status == Deploy.Status.QUEUED and not running.cancel_requested
    client.post("/apps/shop/cancel/")
    queued.refresh_from_db()
    assert queued.status == Deploy.Status.CANCELLED


def test_cancel_with_nothing_to_cancel_says_so_on_get(client, cast):
    client.force_login(cast.owner)
    resp = client.get("/apps/shop/cancel/", follow=True)
    assert "shop has no queued or running deploy to cancel." in resp.content.decode()


@pytest.mark.parametrize(("who", "sees", "deploys"), ROLES)
@pytest.mark.parametrize("action", ["rollback", "cancel"])
def test_the_confirmations_answer_by_role(cast, releases, who, sees, deploys, action):
    DeployFactory(app=cast.app, commit="8" * 40)
    resp = _login(who, cast).get(f"/apps/shop/{action}/")
    assert resp.status_code == (200 if deploys else 403 if sees else 404)


# --- Cancel on a deploy's page: that deploy alone --------------------------------------------


def _state(*deploys: Deploy) -> list[tuple[str, bool]]:
    return [
        (d.status, d.cancel_requested)
        for d in Deploy.objects.filter(pk__in=[d.pk for d in deploys]).order_by("pk")
    ]


def test_a_deploys_cancel_asks_about_it_alone_and_leads_back_to_it(client, cast, releases):
    third = releases[2]
    running = DeployFactory(app=cast.app, commit="8" * 40, status=Deploy.Status.BUILDING)
    queued = DeployFactory(app=cast.app, commit="9" * 40)
    client.force_login(cast.member)
    url = f"/apps/shop/deploys/{queued.pk}/cancel/"
    html = client.get(f"/deploys/{queued.pk}/").content.decode()
    assert f'<form class="right" method="get" action="{url}">' in html  # its page's Cancel
    html = client.get(url).content.decode()
    assert f"Cancel #{queued.pk} (queued, commit 9999999)? #{third.pk} stays live." in html
    assert f"#{running.pk} (" not in html
    assert "It never starts." in html
    assert f'<form method="post" action="{url}">' in html
    assert f">Cancel #{queued.pk}</button>" in html
    assert (
        f'<a href="/deploys/{queued.pk}/" id="confirm-back">Back to deploy #{queued.pk}, '
        "change nothing</a>"
    ) in html
    assert _state(running, queued) == [("building", False), ("queued", False)]
    resp = client.post(url, follow=True)
    assert resp.redirect_chain == [(f"/deploys/{queued.pk}/", 302)]
    assert _state(running, queued) == [("building", False), ("cancelled", False)]


def test_a_running_deploys_cancel_stops_its_build_and_leaves_the_queued_one(client, cast):
    running = DeployFactory(app=cast.app, commit="8" * 40, status=Deploy.Status.DEPLOYING)
    queued = DeployFactory(app=cast.app, commit="9" * 40)
    client.force_login(cast.owner)
    html = client.get(f"/apps/shop/deploys/{running.pk}/cancel/").content.decode()
    assert f"Cancel #{running.pk} (deploying, commit 8888888)? Nothing is live now." in html
    assert "It stops at its next step; a rollout under way is undone." in html
    resp = client.post(f"/apps/shop/deploys/{running.pk}/cancel/", follow=True)
    assert resp.redirect_chain == [(f"/deploys/{running.pk}/", 302)]
    assert f"Cancelling deploy #{running.pk}." in resp.content.decode()
    # The pipeline stops it at its next step (and puts back what was live): not marked here.
    assert _state(running, queued) == [("deploying", True), ("queued", False)]


@pytest.mark.parametrize("status", Deploy.FINISHED)
def test_a_finished_deploys_cancel_says_so_and_changes_nothing(client, cast, status):
    done = DeployFactory(app=cast.app, commit="8" * 40, status=status)
    queued = DeployFactory(app=cast.app, commit="9" * 40)
    client.force_login(cast.member)
    for method in (client.get, client.post):
        resp = method(f"/apps/shop/deploys/{done.pk}/cancel/", follow=True)
        assert resp.redirect_chain == [(f"/deploys/{done.pk}/", 302)]
        assert (
            f"Deploy #{done.pk} has already finished ({status}): there is nothing to cancel."
        ) in resp.content.decode()
    assert _state(done, queued) == [(status, False), ("queued", False)]


@pytest.mark.parametrize(
    ("was", "now"),
    [("queued", "superseded"), ("queued", "failed"), ("building", "live"), ("pushing", "failed")],
)
def test_a_deploy_that_finished_after_the_question_is_left_as_it_ended(client, cast, was, now):
    d = DeployFactory(app=cast.app, commit="8" * 40, status=was)
    client.force_login(cast.member)
    assert client.get(f"/apps/shop/deploys/{d.pk}/cancel/").status_code == 200
    Deploy.objects.filter(pk=d.pk).update(status=now)  # the worker, meanwhile
    resp = client.post(f"/apps/shop/deploys/{d.pk}/cancel/", follow=True)
    assert f"Deploy #{d.pk} has already finished ({now})" in resp.content.decode()
    assert _state(d) == [(now, False)]


def test_a_deploys_cancel_under_another_apps_name_or_an_unknown_one_is_404(client, cast):
    other = AppFactory(name="blog")
    theirs = DeployFactory(app=other, commit="7" * 40)
    client.force_login(cast.superuser)  # may everything, yet not mix two apps' deploys
    for pk in (theirs.pk, 999999, 2**70):  # the last beyond any database's integers
        for method in (client.get, client.post):
            assert method(f"/apps/shop/deploys/{pk}/cancel/").status_code == 404
    assert _state(theirs) == [("queued", False)]


@pytest.mark.parametrize(("who", "sees", "deploys"), ROLES)
def test_a_deploys_cancel_answers_by_role(cast, who, sees, deploys):
    d = DeployFactory(app=cast.app, commit="8" * 40, status=Deploy.Status.BUILDING)
    client = _login(who, cast)
    url = f"/apps/shop/deploys/{d.pk}/cancel/"
    assert client.get(url).status_code == (200 if deploys else 403 if sees else 404)
    assert client.post(url).status_code == (302 if deploys else 403 if sees else 404)
    assert _state(d) == [("building", deploys)]
