"""Hostile values through every way in: the create_app command, the new-app form, the admin,
the secret form and set_secret. Each is refused with a clear message and nothing is created
or changed; and no app URL tells an outsider whether an app exists."""

from __future__ import annotations

import io
import json
from io import StringIO
from unittest.mock import patch

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from apps.models import App
from secrets_vault import services as vault
from secrets_vault.models import Secret
from tests import base
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db
cast = base.cast


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


REPO = "https://github.com/acme/shop.git"
# The roles inline of the app admin (apps.admin.MembershipInline), posted empty.
NO_MEMBERSHIPS = {"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
# (name, repo, branch, domain): one hostile value each, the rest good.
CREATE = {
    "name-trailing-newline": ("fresh\n", REPO, "main", None),
    "name-nul": ("fresh\x00", REPO, "main", None),
    "name-cyrillic": ("fr\u0435sh", REPO, "main", None),
    "name-reserved": ("new", REPO, "main", None),
    "name-too-long": ("a" * 40, REPO, "main", None),
    "branch-trailing-newline": ("fresh", REPO, "main\n", None),
    "branch-option": ("fresh", REPO, "--upload-pack=id", None),
    "branch-cr": ("fresh", REPO, "main\r", None),
    "repo-trailing-newline": ("fresh", REPO + "\n", "main", None),
    "repo-ext": ("shop", "ext::sh -c id", "main", None),
    "repo-unicode-host": ("shop", "https://g\u0456thub.com/a/b.git", "main", None),
    "domain-backtick": ("fresh", REPO, "main", "a.io`) || HostRegexp(`.+"),
    "domain-trailing-newline": ("fresh", REPO, "main", "a.io\n"),
    "domain-kelvin-sign": ("fresh", REPO, "main", "\u212aoyra.io"),
    "domain-with-port": ("fresh", REPO, "main", "a.io:8080"),
    "domain-scheme": ("fresh", REPO, "main", "https://a.io"),
    "domain-nul": ("fresh", REPO, "main", "a.io\x00"),
}


STRIPPED_BY_FORMS = {
    "name-trailing-newline",
    "branch-trailing-newline",
    "branch-cr",
    "repo-trailing-newline",
    "domain-trailing-newline",
}


@pytest.mark.parametrize(("name", "repo", "branch", "domain"), CREATE.values(), ids=list(CREATE))
def test_create_app_refuses_and_creates_nothing(name, repo, branch, domain):
    args = [name, "--repo", repo, "--branch", branch]
    if domain is not None:
        args += ["--domain", domain]
    with pytest.raises(CommandError) as exc:
        call_command("create_app", *args, stdout=StringIO())
    assert len(str(exc.value)) < 400
    assert App.objects.count() == 0


# A form strips the whitespace around a text field (Django's CharField) before validation;
# every other hostile value must be refused by the form as by the command.
FORM = {k: v for k, v in CREATE.items() if k not in STRIPPED_BY_FORMS}


@pytest.mark.parametrize(("name", "repo", "branch", "domain"), FORM.values(), ids=list(FORM))
def test_the_new_app_form_refuses_and_creates_nothing(cast, name, repo, branch, domain):
    client = Client()
    client.force_login(cast.owner)
    data = {"name": name, "repo_url": repo, "branch": branch, "trigger": "push"}
    res = client.post(reverse("app-new"), {**data, "domains": domain or ""})
    assert res.status_code == 200  # the form again, never a 500
    assert res.context["form"].errors
    assert not App.objects.exclude(name="shop").exists()


ADMIN_DOMAINS = {
    "a-string": '"shop.io"',
    "a-mapping": '{"shop.io": true}',
    "a-number": "7",
    "null": "null",
    "backtick": '["a.io`) || HostRegexp(`.+"]',
    "not-a-string": "[1]",
    "nested-list": '[["shop.io"]]',
    "uppercase": '["SHOP.IO"]',
    "twice": '["shop.io", "shop.io"]',
    "trailing-newline": '["shop.io\\n"]',
    "empty-name": '[""]',
    "too-many": json.dumps([f"s{i}.io" for i in range(101)]),
}


@pytest.mark.parametrize("domains", ADMIN_DOMAINS.values(), ids=list(ADMIN_DOMAINS))
def test_the_admin_refuses_bad_domains_on_add(admin_client, domains):
    res = admin_client.post(
        reverse("admin:apps_app_add"),
        {
            "name": "shop",
            "repo_url": REPO,
            "branch": "main",
            "trigger": "push",
            "domains": domains,
            **NO_MEMBERSHIPS,
        },
    )
    assert res.status_code == 200  # the form again, with the error
    assert "errorlist" in res.content.decode()
    assert App.objects.count() == 0


@pytest.mark.parametrize("domains", ADMIN_DOMAINS.values(), ids=list(ADMIN_DOMAINS))
def test_the_admin_refuses_bad_domains_on_change(admin_client, domains):
    app = AppFactory(name="shop", domains=["shop.io"])
    res = admin_client.post(
        reverse("admin:apps_app_change", args=(app.pk,)),
        {
            "repo_url": REPO,
            "branch": "main",
            "trigger": "push",
            "domains": domains,
            **NO_MEMBERSHIPS,
        },
    )
    assert res.status_code == 200
    app.refresh_from_db()
    assert app.domains == ["shop.io"]


def test_the_admin_saves_good_domains(admin_client):
    app = AppFactory(name="shop", domains=["shop.io"])
    res = admin_client.post(
        reverse("admin:apps_app_change", args=(app.pk,)),
        {
            "repo_url": REPO,
            "branch": "main",
            "trigger": "push",
            "domains": '["a.io", "b.io"]',
            **NO_MEMBERSHIPS,
        },
    )
    assert res.status_code == 302
    app.refresh_from_db()
    assert app.domains == ["a.io", "b.io"]


@pytest.mark.parametrize("stored", ["shop.io", {"a": 1}, 7, [1, None]])
def test_a_row_stored_before_validation_breaks_no_ones_pages(cast, stored):
    AppFactory(name="legacy").__class__.objects.filter(name="legacy").update(domains=stored)
    client = Client()
    client.force_login(cast.member)  # may create apps, does not see "legacy"
    assert client.get(reverse("app-new")).status_code == 200
    res = client.post(
        reverse("app-new"),
        {"name": "fresh", "repo_url": REPO, "branch": "main", "trigger": "push", "domains": "f.io"},
    )
    assert res.status_code == 200 and App.objects.filter(name="fresh").exists()


SECRET_VALUES = {
    "nul": b"key=TOKEN&value=a%00b",
    "not-utf8": b"key=TOKEN&value=%ff%fe%fd",
    "latin1": b"key=TOKEN&value=p%e4ss",
    "name-inner-newline": b"key=TO%0AKEN&value=x",
    "name-lookalike": b"key=T%D0%9EKEN&value=x",
}


@pytest.mark.parametrize("body", SECRET_VALUES.values(), ids=list(SECRET_VALUES))
def test_the_secret_form_refuses_what_it_cannot_store_exactly(cast, body):
    client = Client()
    client.force_login(cast.owner)
    res = client.post(
        reverse("secret-list", args=["shop"]),
        body,
        content_type="application/x-www-form-urlencoded",
    )
    assert res.status_code == 200
    assert Secret.objects.count() == 0


STDIN = {
    "not-utf8": b"\xff\xfe secret\n",
    "latin1": "p\xe4ss\n".encode("latin-1"),
    "nul": b"a\x00b\n",
    "over-64-KiB": b"x" * (64 * 1024 + 10),
}


@pytest.mark.parametrize("data", STDIN.values(), ids=list(STDIN))
def test_set_secret_refuses_bytes_it_cannot_store_exactly(data):
    app = AppFactory(name="shop")

    class Stdin:
        buffer = io.BytesIO(data)

    with patch("sys.stdin", Stdin()), pytest.raises(CommandError) as exc:
        call_command("set_secret", "shop", "TOKEN", stdout=StringIO())
    assert any(w in str(exc.value) for w in ("Nothing was set", "over 64 KiB", "NUL byte"))
    assert not app.secrets.exists()


def test_set_secret_keeps_a_pem_keys_own_newline():
    app = AppFactory(name="shop")
    pem = "-----BEGIN KEY-----\nMIIB\n-----END KEY-----\n"

    class Stdin:
        buffer = io.BytesIO((pem + "\n").encode())  # `printf '%s\n' "$pem" |`

    with patch("sys.stdin", Stdin()):
        call_command("set_secret", "shop", "PEM", stdout=StringIO())
    assert vault.secret_values(app=app) == {"PEM": pem}


APP_URLS = [
    ("get", "app-detail", []),
    ("post", "app-deploy", []),
    ("post", "app-redeploy", []),
    ("post", "app-rollback", []),
    ("post", "app-cancel", []),
    ("get", "deploy-cancel", [1]),
    ("post", "deploy-cancel", [1]),
    ("get", "secret-list", []),
    ("post", "secret-list", []),
    ("post", "secret-delete", ["TOKEN"]),
]


@pytest.mark.parametrize(("method", "name", "extra"), APP_URLS, ids=[u[1] for u in APP_URLS])
def test_an_outsider_cannot_tell_a_known_app_from_an_unknown_one(cast, method, name, extra):
    client = Client()
    client.force_login(cast.outsider)
    known = getattr(client, method)(reverse(name, args=["shop", *extra]))
    unknown = getattr(client, method)(reverse(name, args=["nosuchapp", *extra]))
    assert known.status_code == unknown.status_code == 404


def test_a_debug_error_page_shows_no_posted_secret_and_no_url_password(cast, settings):
    settings.DEBUG = True
    settings.DATABASE_URL = "postgres://koyra:db-pw-CANARY1@db/koyra"
    settings.REDIS_URL = "redis://:redis-pw-CANARY2@redis:6379/0"
    settings.RQ_QUEUES = {"deploys": {"URL": settings.REDIS_URL}}
    client = Client(raise_request_exception=False)
    client.force_login(cast.owner)
    with patch("secrets_vault.crypto.encrypt", side_effect=RuntimeError("vault down")):
        res = client.post(
            reverse("secret-list", args=["shop"]),
            {"key": "TOKEN", "value": "posted-CANARY3", "password": "pw-CANARY4"},
        )
    body = res.content.decode()
    assert res.status_code == 500
    assert "vault down" in body and "RQ_QUEUES" in body  # Django's technical page it is
    for canary in ("CANARY1", "CANARY2", "CANARY3", "CANARY4"):
        assert canary not in body


def test_the_same_form_with_good_values_creates_the_app(cast):
    """The control for the table above: the refusals come from the hostile value alone."""
    client = Client()
    client.force_login(cast.owner)
    data = {"name": "fresh", "repo_url": REPO, "branch": "main", "trigger": "push"}
    res = client.post(reverse("app-new"), {**data, "domains": "Fresh.IO"})
    assert res.status_code == 200 and not res.context.get("form")
    assert App.objects.get(name="fresh").domains == ["fresh.io"]


HOSTILE_NAMES = ["shop%00", "shop%0A", "a" * 5000, "sh%D0%BEp", "SHOP", "shop%20"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: n[:12])
@pytest.mark.parametrize("suffix", ["", "secrets/", "secrets/TOKEN/delete/", "deploy/"])
def test_a_url_with_a_name_no_app_can_have_is_the_same_404(cast, name, suffix):
    client = Client()
    client.force_login(cast.owner)  # who may see "shop": still nothing for a look-alike
    res = client.post(f"/apps/{name}/{suffix}")
    assert res.status_code == 404


@pytest.mark.parametrize("key", ["TOKEN%00", "TO%0AKEN", "K" * 5000])
def test_a_secret_url_with_a_key_no_secret_can_have_is_a_404(cast, key):
    client = Client()
    client.force_login(cast.owner)
    assert client.post(f"/apps/shop/secrets/{key}/delete/").status_code == 404


@pytest.mark.parametrize("pk", ["9" * 30, "9" * 5000, "-1", "%C2%B2"])
def test_a_deploy_url_with_an_impossible_id_is_a_404(cast, pk):
    client = Client()
    client.force_login(cast.owner)
    assert client.get(f"/deploys/{pk}/").status_code == 404
    assert client.get(f"/deploys/{pk}/logs/stream").status_code == 404


@pytest.mark.parametrize("name", ["shop\x00", "shop\n", "a" * 5000, "SHOP"], ids=repr)
@pytest.mark.parametrize(
    "command", [["set_secret", "{name}", "K"], ["deploy", "{name}"], ["list_deploys", "{name}"]]
)
def test_commands_given_a_name_no_app_can_have_say_so(cast, name, command):
    args = [a.format(name=name) for a in command]

    class Stdin:
        buffer = io.BytesIO(b"value\n")

    with patch("sys.stdin", Stdin()), pytest.raises(CommandError, match="No app named"):
        call_command(*args, stdout=StringIO())
    assert not Secret.objects.exists()
