from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from apps.models import App
from secrets_vault import crypto

pytestmark = pytest.mark.django_db


def _create(*args):
    from io import StringIO

    out = StringIO()
    call_command("create_app", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_webhook_url_and_secret_once():
    out = _create("shop", "--repo", "https://github.com/acme/shop.git", "--domain", "shop.io")
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert lines["webhook_url"].endswith("/webhooks/github/shop/")
    secret = lines["webhook_secret"]
    assert len(secret) >= 64
    app = App.objects.get(name="shop")
    assert secret not in app.webhook_secret_token
    assert crypto.decrypt(app.webhook_secret_token) == secret
    assert app.domains == ["shop.io"]
    assert app.repo_full_name == "acme/shop"


def test_json_output_is_one_object():
    out = _create(
        "api", "--repo", "git@github.com:acme/api.git", "--json", "--trigger", "workflow_run"
    )
    data = json.loads(out)
    assert set(data) == {"name", "webhook_url", "webhook_secret"}
    assert App.objects.get(name="api").trigger == "workflow_run"


@pytest.mark.parametrize(
    "args",
    [
        ["Shop", "--repo", "https://github.com/a/b"],
        ["new", "--repo", "https://github.com/a/b"],
        ["1shop", "--repo", "https://github.com/a/b"],
        ["a" * 40, "--repo", "https://github.com/a/b"],
        ["shop_web", "--repo", "https://github.com/a/b"],
        ["shop", "--repo", "https://github.com/a/b", "--branch", "main;rm -rf /"],
        ["shop", "--repo", "https://github.com/a/b", "--branch", "$(id)"],
        ["shop", "--repo", "https://github.com/a/b", "--branch", "-upload-pack=x"],
        ["shop", "--repo", "https://github.com/a/b", "--branch", "a..b"],
        ["shop", "--repo", "ext::sh -c touch% /tmp/pwned"],
        ["shop", "--repo", "http://github.com/a/b"],
        ["shop", "--repo", "--upload-pack=touch /tmp/x"],
        ["shop", "--repo", "https://github.com/a/b; id"],
        ["shop", "--repo", "file:///tmp/../etc"],
        ["shop", "--repo", "https://github.com/a/b", "--domain", "http://x.com"],
        ["shop", "--repo", "https://github.com/a/b", "--domain", "a`b.com"],
    ],
)
def test_it_refuses_bad_input_with_a_clear_message(args):
    with pytest.raises(CommandError) as exc:
        _create(*args)
    assert len(str(exc.value)) > 20
    assert not App.objects.exists()


def test_it_refuses_a_duplicate_name():
    _create("shop", "--repo", "https://github.com/a/b")
    with pytest.raises(CommandError, match="already exists"):
        _create("shop", "--repo", "https://github.com/a/c")


def test_a_path_on_the_server_is_refused_unless_allowed(settings):
    settings.KOYRA_ALLOW_FILE_REPOS = False
    with pytest.raises(CommandError, match="KOYRA_ALLOW_FILE_REPOS=1"):
        _create("shop", "--repo", "file:///srv/other-team/repo")
    settings.KOYRA_ALLOW_FILE_REPOS = True
    _create("shop", "--repo", "file:///srv/other-team/repo")
    assert App.objects.filter(name="shop").exists()


def test_a_domain_already_routed_to_another_app_is_refused():
    _create("shop", "--repo", "https://github.com/a/b", "--domain", "shop.example.com")
    with pytest.raises(CommandError, match="already routes to the app 'shop'"):
        _create("shop2", "--repo", "https://github.com/a/c", "--domain", "shop.example.com")
    assert not App.objects.filter(name="shop2").exists()
