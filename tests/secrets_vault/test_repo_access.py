"""The app's repository credentials (SPEC §6 deploy_key, set_repo_token): made and stored
encrypted, write-only, re-encrypted by rotate_keys, shown (public key only) on the app page."""

from __future__ import annotations

import io
import subprocess

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from secrets_vault import crypto, repo_access, services
from secrets_vault.models import RepoAccess
from tests import base
from tests.secrets_vault.conftest import new_key

pytestmark = pytest.mark.django_db
cast = base.cast

TOKEN = "github_pat_11AAAAAAA0abcdefghijkl_mnopqrstuvwxyz0123456789"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- services --------------------------------------------------------------------------------


def test_a_deploy_key_is_made_once_and_rotated_on_request(cast, keys, tmp_path):
    access, made = repo_access.deploy_key_make(app=cast.app)
    assert made
    again, made_again = repo_access.deploy_key_make(app=cast.app)
    assert not made_again and again.deploy_key_public == access.deploy_key_public
    rotated, made_new = repo_access.deploy_key_make(app=cast.app, rotate=True)
    assert made_new and rotated.deploy_key_public != access.deploy_key_public
    assert RepoAccess.objects.count() == 1


def test_the_deploy_key_is_an_ed25519_pair_ssh_accepts(cast, keys, tmp_path):
    access, _ = repo_access.deploy_key_make(app=cast.app)
    row = RepoAccess.objects.get(app=cast.app)
    assert "PRIVATE" not in row.deploy_key_token  # only the Fernet token is stored
    private = repo_access.repo_auth(app=cast.app).ssh_key
    key = tmp_path / "k"
    key.write_text(private)
    key.chmod(0o600)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert access.deploy_key_public.split()[:2] == derived[:2]
    assert access.deploy_key_public.startswith("ssh-ed25519 ")
    assert access.deploy_key_public.endswith(" koyra-shop")


def test_a_token_is_stored_encrypted_and_cleared(cast, keys):
    repo_access.repo_token_set(app=cast.app, token=TOKEN)
    row = RepoAccess.objects.get(app=cast.app)
    assert TOKEN not in row.https_token and row.has_token
    auth = repo_access.repo_auth(app=cast.app)
    assert (auth.token, auth.ssh_key, auth.app) == (TOKEN, "", "shop")
    assert repo_access.repo_token_clear(app=cast.app)
    assert not repo_access.repo_token_clear(app=cast.app)
    assert repo_access.repo_auth(app=cast.app).token == ""


@pytest.mark.parametrize(
    "token",
    ["", " ", "ghp abc", "ghp_abc\n", "ghp_abc\nX", "\tghp", "tök", "a" * 1025, "x\x00y", "ghp\r"],
)
def test_a_token_that_git_could_not_be_given_on_one_line_is_refused(cast, keys, token):
    with pytest.raises(ValidationError) as exc:
        repo_access.repo_token_set(app=cast.app, token=token)
    if token.strip():
        assert token.strip() not in " ".join(exc.value.messages)  # never echoed
    assert not RepoAccess.objects.exists()


def test_an_app_without_credentials_gets_empty_ones(cast, keys):
    auth = repo_access.repo_auth(app=cast.app)
    assert (auth.ssh_key, auth.token, auth.app) == ("", "", "shop")


def test_credentials_that_do_not_decrypt_fail_closed_with_the_fix(cast, keys, settings):
    repo_access.deploy_key_make(app=cast.app)
    settings.KOYRA_FERNET_KEYS = [new_key()]
    with pytest.raises(crypto.VaultError, match="deploy_key shop --rotate"):
        repo_access.repo_auth(app=cast.app)


def test_rotate_keys_re_encrypts_the_deploy_key_and_token(cast, keys, settings, old_key):
    repo_access.deploy_key_make(app=cast.app)
    repo_access.repo_token_set(app=cast.app, token=TOKEN)
    private = repo_access.repo_auth(app=cast.app).ssh_key
    settings.KOYRA_FERNET_KEYS = [new_key(), old_key]
    result = services.secrets_rotate()
    assert result.repo_credentials == 2
    assert not [f for f in result.failed if "deploy key" in f or "repository token" in f]
    settings.KOYRA_FERNET_KEYS = settings.KOYRA_FERNET_KEYS[:1]  # the old key dropped
    auth = repo_access.repo_auth(app=cast.app)
    assert (auth.ssh_key, auth.token) == (private, TOKEN)


def test_rotate_keys_reports_a_credential_no_key_opens(cast, keys, settings):
    repo_access.repo_token_set(app=cast.app, token=TOKEN)
    settings.KOYRA_FERNET_KEYS = [new_key()]
    result = services.secrets_rotate()
    assert "shop: repository token" in result.failed
    assert result.repo_credentials == 0


# --- commands --------------------------------------------------------------------------------


def test_deploy_key_prints_the_public_key_only(cast, keys):
    out, err = io.StringIO(), io.StringIO()
    call_command("deploy_key", "shop", stdout=out, stderr=err)
    public = RepoAccess.objects.get(app=cast.app).deploy_key_public
    assert out.getvalue().strip() == public
    assert "Deploy keys" in err.getvalue() and "PRIVATE" not in out.getvalue() + err.getvalue()
    out2 = io.StringIO()
    call_command("deploy_key", "shop", stdout=out2, stderr=io.StringIO())
    assert out2.getvalue().strip() == public
    out3 = io.StringIO()
    call_command("deploy_key", "shop", "--rotate", stdout=out3, stderr=io.StringIO())
    assert out3.getvalue().strip() != public


def test_deploy_key_of_an_unknown_app_is_refused(keys, db):
    with pytest.raises(CommandError, match="No app named"):
        call_command("deploy_key", "nope")


def test_set_repo_token_reads_stdin_and_clear_removes_it(cast, keys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    out = io.StringIO()
    call_command("set_repo_token", "shop", stdout=out)
    assert TOKEN not in out.getvalue()
    assert repo_access.repo_auth(app=cast.app).token == TOKEN
    call_command("set_repo_token", "shop", "--clear", stdout=out)
    assert repo_access.repo_auth(app=cast.app).token == ""


def test_set_repo_token_refuses_a_bad_token_without_echoing_it(cast, keys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("two words\n"))
    with pytest.raises(CommandError) as exc:
        call_command("set_repo_token", "shop")
    assert "two words" not in str(exc.value)
    assert not RepoAccess.objects.exists()


# --- the app page ----------------------------------------------------------------------------


def test_the_panel_shows_the_public_key_and_never_a_secret(client, cast, keys):
    access, _ = repo_access.deploy_key_make(app=cast.app)
    repo_access.repo_token_set(app=cast.app, token=TOKEN)
    private = repo_access.repo_auth(app=cast.app).ssh_key
    client.force_login(cast.owner)
    html = client.get("/apps/shop/").content.decode()
    assert 'id="repository-access"' in html and access.deploy_key_public in html
    assert TOKEN not in html and private.splitlines()[1] not in html
    row = RepoAccess.objects.get(app=cast.app)
    assert row.https_token not in html and row.deploy_key_token not in html
    assert "Rotate deploy key" in html and "Replace token" in html


def test_the_panel_offers_to_make_a_key_when_there_is_none(client, cast, keys):
    client.force_login(cast.owner)
    html = client.get("/apps/shop/").content.decode()
    assert "Make deploy key" in html and "Set token" in html


# Who may change the repository's credentials: app admins only.
CHANGING_CREDENTIALS = [
    ("owner", 302),
    ("admin", 302),
    ("superuser", 302),
    ("member", 403),  # a deployer may not change the repository's credentials
    ("viewer", 403),
    ("staff", 404),
    ("outsider", 404),
]


@pytest.mark.parametrize("who,status", CHANGING_CREDENTIALS)
def test_making_a_deploy_key_access(client, cast, keys, who, status):
    client.force_login(getattr(cast, who))
    resp = client.post("/apps/shop/secrets/repository/deploy-key/")
    assert resp.status_code == status
    assert RepoAccess.objects.filter(app=cast.app).exists() == (status == 302)


def test_rotating_from_the_page_makes_a_new_key(client, cast, keys):
    access, _ = repo_access.deploy_key_make(app=cast.app)
    client.force_login(cast.owner)
    client.post("/apps/shop/secrets/repository/deploy-key/")
    assert RepoAccess.objects.get().deploy_key_public == access.deploy_key_public
    client.post("/apps/shop/secrets/repository/deploy-key/", {"rotate": "1"})
    assert RepoAccess.objects.get().deploy_key_public != access.deploy_key_public


@pytest.mark.parametrize("who,status", CHANGING_CREDENTIALS)
def test_setting_a_token_access(client, cast, keys, who, status):
    client.force_login(getattr(cast, who))
    resp = client.post("/apps/shop/secrets/repository/token/", {"token": TOKEN})
    assert resp.status_code == status
    assert repo_access.repo_auth(app=cast.app).token == (TOKEN if status == 302 else "")


def test_a_refused_token_is_not_rendered_back(client, cast, keys):
    client.force_login(cast.owner)
    resp = client.post("/apps/shop/secrets/repository/token/", {"token": "bad token"}, follow=True)
    html = resp.content.decode()
    assert "repository token is not valid" in html and "bad token" not in html
    assert not RepoAccess.objects.exists()


def test_clearing_the_token_from_the_page(client, cast, keys):
    repo_access.repo_token_set(app=cast.app, token=TOKEN)
    client.force_login(cast.owner)
    client.post("/apps/shop/secrets/repository/token/", {"clear": "1"})
    assert repo_access.repo_auth(app=cast.app).token == ""


def test_get_is_not_allowed(client, cast, keys):
    client.force_login(cast.owner)
    assert client.get("/apps/shop/secrets/repository/deploy-key/").status_code == 405
    assert client.get("/apps/shop/secrets/repository/token/").status_code == 405


# --- the admin -------------------------------------------------------------------------------


def _admin_pages(admin_client, pk: int) -> str:
    body = ""
    for name, args in [
        ("admin:secrets_vault_repoaccess_changelist", ()),
        ("admin:secrets_vault_repoaccess_change", (pk,)),
        ("admin:secrets_vault_repoaccess_history", (pk,)),
        ("admin:secrets_vault_repoaccess_delete", (pk,)),
    ]:
        res = admin_client.get(reverse(name, args=args))
        assert res.status_code == 200, name
        body += res.content.decode()
    return body


def test_the_admin_shows_the_public_key_and_never_a_credential(admin_client, cast, keys):
    access, _ = repo_access.deploy_key_make(app=cast.app)
    repo_access.repo_token_set(app=cast.app, token=TOKEN)
    row = RepoAccess.objects.get()
    private = repo_access.repo_auth(app=cast.app).ssh_key
    body = _admin_pages(admin_client, row.pk)
    assert access.deploy_key_public in body
    for hidden in (TOKEN, row.https_token, row.deploy_key_token, *private.splitlines()[1:-1]):
        assert hidden not in body


def test_the_admin_sets_a_token_and_makes_a_key_write_only(admin_client, cast, keys):
    access, _ = repo_access.deploy_key_make(app=cast.app)
    url = reverse("admin:secrets_vault_repoaccess_change", args=(access.pk,))
    resp = admin_client.post(url, {"new_token": TOKEN, "make_deploy_key": "on"})
    assert resp.status_code == 302, resp.content.decode()[:2000]
    row = RepoAccess.objects.get()
    assert row.deploy_key_public != access.deploy_key_public
    assert repo_access.repo_auth(app=cast.app).token == TOKEN
    page = admin_client.get(url).content.decode()
    assert TOKEN not in page
    resp = admin_client.post(url, {"new_token": "two words"})
    assert resp.status_code == 200 and "two words" not in resp.content.decode()
    admin_client.post(url, {"clear_token": "on"})
    assert repo_access.repo_auth(app=cast.app).token == ""


def test_the_admin_adds_access_for_an_app(admin_client, cast, keys):
    url = reverse("admin:secrets_vault_repoaccess_add")
    resp = admin_client.post(url, {"app": cast.app.pk, "make_deploy_key": "on"})
    assert resp.status_code == 302
    assert RepoAccess.objects.get(app=cast.app).deploy_key_public.startswith("ssh-ed25519 ")
