"""Roles per app (SPEC §6, apps.access): every app URL, GET and POST, for every kind of user of
tests/base.py's cast. Not visible: 404 (names cannot be enumerated); visible but not allowed:
403; a refused request changes nothing."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from apps import access
from apps.models import App, Membership
from apps.services import app_env_set
from deployments import services as deploys
from deployments.boundaries import engine, registry
from deployments.models import Deploy
from secrets_vault.models import RepoAccess, Secret
from secrets_vault.services import secret_set
from tests import base
from tests.factories import AppFactory, DeployFactory, UserFactory

pytestmark = pytest.mark.django_db
cast = base.cast

# The role each member of the cast has on "shop" (None: not even visible).
ROLE = {
    "owner": "admin",
    "admin": "admin",
    "superuser": "admin",
    "member": "deployer",
    "viewer": "viewer",
    "staff": None,  # is_staff alone gives nothing on apps
    "outsider": None,
}
WHO = list(ROLE)

# (method, path, action needed, status when allowed, form). {deploy} is a queued deploy's pk.
URLS = [
    ("get", "/apps/shop/", "see", 200, None),
    ("get", "/deploys/{deploy}/", "see", 200, None),
    ("get", "/apps/shop/settings/", "settings", 200, None),
    ("post", "/apps/shop/settings/", "settings", 302, {"branch": "dev", "trigger": "push"}),
    ("post", "/apps/shop/settings/env/", "settings", 302, {"key": "NEW_VAR", "value": "v"}),
    ("post", "/apps/shop/settings/env/LOG_LEVEL/unset/", "settings", 302, {}),
    ("get", "/apps/shop/delete/", "delete", 200, None),
    ("post", "/apps/shop/delete/", "delete", 302, {"confirm": "shop"}),
    ("post", "/apps/shop/deploy/", "deploy", 302, {}),
    ("post", "/apps/shop/redeploy/", "deploy", 302, {}),
    ("post", "/apps/shop/rollback/", "deploy", 302, {}),
    ("post", "/apps/shop/cancel/", "deploy", 302, {}),
    ("get", "/apps/shop/deploys/{deploy}/cancel/", "deploy", 200, None),
    ("post", "/apps/shop/deploys/{deploy}/cancel/", "deploy", 302, {}),
    ("get", "/apps/shop/secrets/", "secrets", 200, None),
    ("post", "/apps/shop/secrets/", "secrets", 302, {"key": "NEW_KEY", "value": "v"}),
    ("post", "/apps/shop/secrets/API_KEY/delete/", "secrets", 302, {}),
    ("post", "/apps/shop/secrets/repository/deploy-key/", "settings", 302, {}),
    ("post", "/apps/shop/secrets/repository/token/", "settings", 302, {"token": "ghp_x1"}),
]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_redis(monkeypatch):
    monkeypatch.setattr(deploys, "deploy_enqueue", lambda *, deploy_id: True)


@pytest.fixture(autouse=True)
def _empty_engine(monkeypatch):
    """Deleting an app asks the engine and the registry what it runs: nothing, here."""
    monkeypatch.setattr(engine, "service_get", lambda name: None)
    monkeypatch.setattr(engine, "secrets_list", lambda label: [])
    monkeypatch.setattr(engine, "image_remove", lambda ref: False)
    monkeypatch.setattr(registry, "tags", lambda name: [])


def _state(app: App):
    if not App.objects.filter(pk=app.pk).exists():
        return "deleted"
    app.refresh_from_db()
    return (
        sorted(Deploy.objects.values_list("pk", "status")),
        sorted(Secret.objects.values_list("key", "token")),
        app.branch,
        app.env,
        list(RepoAccess.objects.values_list("deploy_key_public", "https_token")),
    )


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("method,path,action,ok,form", URLS, ids=[f"{m}-{p}" for m, p, *_ in URLS])
def test_every_app_url_answers_by_role(client, cast, who, method, path, action, ok, form):
    # A queued deploy only where one is needed (a new deploy would supersede it).
    queued = DeployFactory(app=cast.app) if "deploy}" in path or "cancel" in path else None
    secret_set(app=cast.app, key="API_KEY", value="v1")
    app_env_set(app=cast.app, values={"LOG_LEVEL": "debug"})
    role = ROLE[who]
    expected = 404 if role is None else ok if access.ACTIONS[action] in _upto(role) else 403
    before = _state(cast.app)
    client.force_login(getattr(cast, who))
    url = path.format(deploy=queued.pk if queued else 0)
    resp = client.post(url, form) if method == "post" else client.get(url)
    assert resp.status_code == expected
    if expected != ok or method == "get":
        assert _state(cast.app) == before  # a refusal (or a look) changes nothing


def _upto(role: str) -> tuple[str, ...]:
    return access.ROLES[: access.ROLES.index(role) + 1]


@pytest.mark.parametrize("who", WHO)
def test_every_url_needs_a_login(client, cast, who):
    queued = DeployFactory(app=cast.app)
    for method, path, *_rest, form in URLS:
        url = path.format(deploy=queued.pk)
        resp = client.post(url, form or {}) if method == "post" else client.get(url)
        assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("who", WHO)
def test_the_app_page_shows_only_the_buttons_the_role_allows(client, cast, who):
    DeployFactory(app=cast.app)  # queued: the Cancel button would show
    client.force_login(getattr(cast, who))
    resp = client.get("/apps/shop/")
    if ROLE[who] is None:
        assert resp.status_code == 404
        return
    html = resp.content.decode()
    forms = set(re.findall(r'action="/apps/shop/([^"]*)"', html))
    expected = {
        "viewer": set(),
        "deployer": {"deploy/", "cancel/", "secrets/"},
        "admin": {
            "deploy/",
            "cancel/",
            "secrets/",
            "secrets/repository/deploy-key/",
            "secrets/repository/token/",
        },
    }[ROLE[who]]
    assert forms == expected
    assert ('href="/apps/shop/settings/"' in html) == (ROLE[who] == "admin")


@pytest.mark.parametrize("who,cancel", [("viewer", False), ("member", True), ("owner", True)])
def test_the_deploy_page_shows_cancel_only_to_who_may_deploy(client, cast, who, cancel):
    queued = DeployFactory(app=cast.app)
    client.force_login(getattr(cast, who))
    html = client.get(f"/deploys/{queued.pk}/").content.decode()
    assert (f'action="/apps/shop/deploys/{queued.pk}/cancel/"' in html) == cancel


# --- creating apps: apps.add_app or a superuser --------------------------------------------

NEW = {"name": "blog", "repo_url": "https://github.com/a/blog", "branch": "main"}


@pytest.mark.parametrize(
    "who,status",
    [
        ("owner", 200),  # has apps.add_app (tests/base.py)
        ("member", 200),  # has apps.add_app
        ("superuser", 200),
        ("admin", 403),  # admin of "shop", but no apps.add_app
        ("viewer", 403),
        ("staff", 403),  # is_staff without the permission
        ("outsider", 403),
    ],
)
def test_creating_an_app_needs_the_add_app_permission(client, cast, who, status):
    client.force_login(getattr(cast, who))
    assert client.get("/apps/new/").status_code == status
    assert client.post("/apps/new/", {**NEW, "trigger": "push"}).status_code == status
    assert App.objects.filter(name="blog").exists() == (status == 200)
    list_html = client.get("/apps/").content.decode()
    assert ('href="/apps/new/"' in list_html) == (status == 200)


def test_the_permission_through_a_group_is_enough(client, cast):
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="creators")
    group.permissions.add(Permission.objects.get(codename="add_app"))
    cast.outsider.groups.add(group)
    client.force_login(cast.outsider)
    assert client.post("/apps/new/", {**NEW, "trigger": "push"}).status_code == 200
    assert App.objects.get(name="blog").owner == cast.outsider


# --- apps.access -------------------------------------------------------------------------


@pytest.mark.parametrize("who", WHO)
def test_may_follows_the_role_for_every_action(cast, who):
    role = ROLE[who]
    for action, needed in access.ACTIONS.items():
        allowed = role is not None and needed in _upto(role)
        assert access.may(getattr(cast, who), cast.app, action) == allowed, action
    assert (cast.app in access.visible_qs(getattr(cast, who))) == (role is not None)


def test_an_inactive_user_may_nothing(cast):
    for who in ("owner", "member", "superuser"):
        user = getattr(cast, who)
        user.is_active = False
        user.save()
        assert access.role_of(user, cast.app) is None
        assert not access.visible_qs(user).exists()


def test_an_unknown_action_is_a_programming_error(cast):
    with pytest.raises(KeyError):
        access.may(cast.owner, cast.app, "launch")


def test_one_role_per_user_and_app(cast):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(app=cast.app, user=cast.viewer, role="admin")


# --- grant_access / revoke_access -------------------------------------------------------------


def _call(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("role", ["viewer", "deployer", "admin"])
def test_grant_access_gives_and_replaces_a_role(cast, role):
    said = _call("grant_access", "shop", "charlie", role)
    assert f"charlie is now {role} of shop (was nothing)" in said
    assert access.role_of(cast.outsider, cast.app) == role
    said = _call("grant_access", "shop", "vera", role)
    assert access.role_of(cast.viewer, cast.app) == role
    assert Membership.objects.filter(user=cast.viewer).count() == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (("nope", "bob", "viewer"), "No app named 'nope'"),
        (("shop", "nobody", "viewer"), "No user named 'nobody'"),
        (("shop", "bob", "owner"), "Unknown role 'owner': use one of viewer, deployer, admin"),
        (("shop", "bob", "Admin"), "Unknown role 'Admin'"),
        (("shop", "bob", "admin\n"), "Unknown role"),
        (("shop", "bob", ""), "Unknown role"),
        (("shop\n", "bob", "viewer"), "No app named"),
    ],
)
def test_grant_access_refuses_with_a_clear_error_and_changes_nothing(cast, args, message):
    before = list(Membership.objects.values_list("user__username", "role"))
    with pytest.raises(CommandError, match=re.escape(message)):
        _call("grant_access", *args)
    assert list(Membership.objects.values_list("user__username", "role")) == before


def test_grant_access_needs_all_three_arguments(cast):
    with pytest.raises(CommandError):
        _call("grant_access", "shop", "bob")


def test_revoke_access_takes_every_role_and_says_so(cast):
    assert "bob has no role on shop any more" in _call("revoke_access", "shop", "bob")
    assert access.role_of(cast.member, cast.app) is None
    assert "had no role on shop: nothing changed" in _call("revoke_access", "shop", "bob")


def test_revoking_the_owner_removes_the_ownership(cast):
    _call("revoke_access", "shop", "alice")
    cast.app.refresh_from_db()
    assert cast.app.owner is None and access.role_of(cast.owner, cast.app) is None


def test_granting_the_owner_a_lesser_role_demotes_them(cast):
    assert "already its admin" in _call("grant_access", "shop", "alice", "admin")
    _call("grant_access", "shop", "alice", "viewer")
    cast.app.refresh_from_db()
    assert cast.app.owner is None and access.role_of(cast.owner, cast.app) == "viewer"


def test_a_superuser_keeps_everything_and_is_told(cast):
    assert "still may everything" in _call("revoke_access", "shop", "sue")
    assert access.may(cast.superuser, cast.app, "delete")


@pytest.mark.parametrize(
    "args,message",
    [(("nope", "bob"), "No app named 'nope'"), (("shop", "nobody"), "No user named 'nobody'")],
)
def test_revoke_access_refuses_unknown_names(cast, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        _call("revoke_access", *args)
    assert Membership.objects.count() == 3


def test_the_service_refuses_an_unknown_role(cast):
    with pytest.raises(ValidationError, match="Unknown role"):
        access.grant(app=cast.app, user=cast.outsider, role="root")
    assert access.role_of(cast.outsider, cast.app) is None


def test_revoked_access_is_a_404_at_once(client, cast):
    client.force_login(cast.member)
    assert client.get("/apps/shop/").status_code == 200
    _call("revoke_access", "shop", "bob")
    assert client.get("/apps/shop/").status_code == 404
    assert client.post("/apps/shop/deploy/").status_code == 404
    assert not Deploy.objects.exists()


# --- the admin: Django's own permissions --------------------------------------------------


def test_staff_without_permissions_sees_no_app_in_the_admin(client, cast):
    client.force_login(cast.staff)
    assert client.get("/admin/apps/app/").status_code == 403
    assert client.get(f"/admin/apps/app/{cast.app.pk}/change/").status_code == 403
    assert "shop" not in client.get("/admin/").content.decode()


def test_staff_with_the_view_permission_sees_but_cannot_change(client, cast):
    cast.staff.user_permissions.add(Permission.objects.get(codename="view_app"))
    client.force_login(cast.staff)
    assert client.get("/admin/apps/app/").status_code == 200
    resp = client.post(
        f"/admin/apps/app/{cast.app.pk}/change/",
        {"repo_url": cast.app.repo_url, "branch": "dev", "trigger": "push", "domains": "[]"},
    )
    assert resp.status_code == 403
    cast.app.refresh_from_db()
    assert cast.app.branch == "main"
    # ... and it gives nothing on the dashboard.
    assert client.get("/apps/shop/").status_code == 404


def test_staff_with_the_change_permission_cannot_make_themselves_an_owner(client, cast):
    cast.staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_app", "change_app", "add_app"])
    )
    client.force_login(cast.staff)
    form = {"repo_url": cast.app.repo_url, "branch": "dev", "trigger": "push"}
    form |= {"domains": "[]", "workflows": "[]", "owner": cast.staff.pk}
    form |= {"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    resp = client.post(f"/admin/apps/app/{cast.app.pk}/change/", form)
    assert resp.status_code == 302, resp.content.decode()[:2000]
    cast.app.refresh_from_db()
    assert cast.app.branch == "dev"  # what the permission allows...
    assert cast.app.owner == cast.owner  # ...but not the ownership
    assert access.role_of(cast.staff, cast.app) is None
    assert client.get("/apps/shop/").status_code == 404
    # On an app they add, they are the owner, as on the dashboard, whatever the form says.
    form = {"name": "blog", "repo_url": cast.app.repo_url, "branch": "main", "trigger": "push"}
    form |= {"domains": "[]", "workflows": "[]", "owner": cast.owner.pk}
    form |= {"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    resp = client.post("/admin/apps/app/add/", form)
    assert resp.status_code == 302, resp.content.decode()[:2000]
    assert App.objects.get(name="blog").owner == cast.staff


def test_the_admin_edits_roles_inline(admin_client, cast):
    other = UserFactory(username="dora")
    resp = admin_client.post(
        f"/admin/apps/app/{cast.app.pk}/change/",
        {
            "repo_url": cast.app.repo_url,
            "branch": "main",
            "trigger": "push",
            "domains": "[]",
            "workflows": "[]",
            "owner": cast.owner.pk,
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-0-id": "",
            "memberships-0-app": cast.app.pk,
            "memberships-0-user": other.pk,
            "memberships-0-role": "viewer",
        },
    )
    assert resp.status_code == 302, resp.content.decode()[:2000]
    assert access.role_of(other, cast.app) == "viewer"


def test_a_second_app_gives_no_role_on_the_first(cast):
    AppFactory(name="blog", owner=cast.viewer)
    assert access.role_of(cast.viewer, cast.app) == "viewer"
    assert access.role_of(cast.member, App.objects.get(name="blog")) is None
