"""backup and restore (koyra/backup.py): a round trip restores every row exactly, and an archive
that cannot be restored whole (wrong keys, altered rows, another schema, a busy database)
writes nothing. The registry boundary is patched; the rest is real."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core import serializers
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from apps import services as app_services
from apps.models import App, Membership
from deployments import services as deploy_services
from deployments.boundaries import registry
from deployments.models import Deploy, Image, LogLine, PruneRun
from deployments.release_spec import ReleaseSpec
from deployments.webhooks.models import WebhookDelivery
from koyra import backup
from koyra import backup_archive as archive
from secrets_vault import crypto, repo_access
from secrets_vault import services as secret_services
from tests.secrets_vault.conftest import new_key

pytestmark = pytest.mark.django_db

SECRET_VALUE = "postgres://shop:hunter2-plaintext@db/shop"
REPO_TOKEN = "ghp_plaintext_repo_token_123"
DIGESTS = {c: f"sha256:{c * 64}" for c in "abc"}


class FakeRegistry:
    """The registry boundary: which manifests it holds, or that it does not answer."""

    def __init__(self) -> None:
        self.held: dict[tuple[str, str], str] = {}  # (repo, tag) -> digest
        self.down = False

    def _answer(self) -> None:
        if self.down:
            raise registry.RegistryError("registry 127.0.0.1:5000 unreachable: refused")

    def tags(self, repo):
        self._answer()
        return sorted(t for r, t in self.held if r == repo)

    def manifest_digest(self, repo, tag):
        self._answer()
        return self.held.get((repo, tag))

    def manifest_exists(self, repo, digest):
        self._answer()
        return any(r == repo and d == digest for (r, _), d in self.held.items())


@pytest.fixture
def reg(monkeypatch) -> FakeRegistry:
    fake = FakeRegistry()
    for name in ("tags", "manifest_digest", "manifest_exists"):
        monkeypatch.setattr(registry, name, getattr(fake, name))
    return fake


@pytest.fixture
def key(settings) -> str:
    settings.KOYRA_FERNET_KEYS = [new_key()]
    return settings.KOYRA_FERNET_KEYS[0]


def _release(app: App, commit: str, digest: str, status: str, **kw) -> Deploy:
    image = Image.objects.create(
        app=app, commit=commit, ref=f"127.0.0.1:5000/{app.name}:{commit}", digest=digest
    )
    spec = ReleaseSpec(image=image.pinned, env={"LOG_LEVEL": "info"}, secrets=["DATABASE_URL"])
    return Deploy.objects.create(
        app=app,
        commit=commit,
        trigger="manual",
        status=status,
        image=image,
        spec=spec.to_json(),
        **kw,
    )


@pytest.fixture
def state(key, reg, settings):
    """A control plane with something in every table backup covers."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed
    settings.SECRET_KEY = "django-secret-key-that-must-stay-out-of-backups-0123456789"
    User = get_user_model()
    alice = User.objects.create_user("alice", password="pw-alice-123")
    bob = User.objects.create_user("bob", password="pw-bob-123")
    ops = Group.objects.create(name="ops")
    ops.permissions.add(Permission.objects.get(codename="add_app"))
    bob.groups.add(ops)
    alice.user_permissions.add(Permission.objects.get(codename="add_app"))
    shop, _ = app_services.app_create(
        name="shop", repo_url="https://github.com/acme/shop.git", owner=alice
    )
    App.objects.filter(pk=shop.pk).update(domains=["shop.example.com"])
    blog, _ = app_services.app_create(name="blog", repo_url="https://github.com/acme/blog.git")
    Membership.objects.create(app=shop, user=bob, role="deployer")
    secret_services.secret_set(app=shop, key="DATABASE_URL", value=SECRET_VALUE)
    repo_access.repo_token_set(app=shop, token=REPO_TOKEN)
    repo_access.deploy_key_make(app=blog)
    v0 = _release(shop, "1" * 40, DIGESTS["a"], "retired")
    v1 = _release(shop, "2" * 40, DIGESTS["b"], "live", source=v0)
    _release(blog, "3" * 40, DIGESTS["c"], "live")
    LogLine.objects.create(deploy=v1, seq=1, text="==> build\nStep 1/3")
    WebhookDelivery.objects.create(delivery_id="d-1", app=shop, outcome="accepted", deploy=v1)
    PruneRun.objects.create(summary="prune: 0 image(s) deleted")
    for image in Image.objects.select_related("app"):
        reg.held[(image.app.name, image.commit)] = image.digest
    return {"shop": shop, "blog": blog, "v0": v0, "v1": v1}


def _snapshot() -> list[dict]:
    rows = []
    for model in backup.backed_up_models():
        rows += serializers.serialize(
            "python", model._default_manager.order_by("pk"), use_natural_foreign_keys=True
        )
    return rows


def _wipe() -> None:
    for model in reversed(backup.backed_up_models()):
        model._default_manager.all().delete()


def _backup(path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("backup", str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _restore(path, *args) -> str:
    out = StringIO()
    call_command("restore", str(path), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _rewrite(path, change) -> None:
    """The archive at `path` with its manifest and rows passed through `change(manifest,
    rows)`, repackaged with matching checksums (an altered archive that is well formed)."""
    manifest, members = archive.read(path)
    rows = json.loads(members[archive.DATA])
    change(manifest, rows)
    del manifest["members"]
    members[archive.DATA] = json.dumps(rows).encode()
    archive.write(path, manifest, {k: v for k, v in members.items() if k != archive.MANIFEST})


def test_a_round_trip_restores_every_row_exactly(state, tmp_path, key, settings):
    before = _snapshot()
    path = tmp_path / "koyra.tar.gz"
    out, err = _backup(path)
    assert err == ""
    assert "NOT in the backup" in out and crypto.key_fingerprint(key) in out
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["koyra.tar.gz"]  # no temporary left
    _wipe()
    assert "restored the backup made" in _restore(path)
    assert _snapshot() == before
    shop = App.objects.get(name="shop")
    assert secret_services.secret_values(app=shop) == {"DATABASE_URL": SECRET_VALUE}
    assert get_user_model().objects.get(username="alice").check_password("pw-alice-123")
    assert get_user_model().objects.get(username="bob").has_perm("apps.add_app")  # by group
    assert not Image.objects.filter(deleted__isnull=False).exists()
    # The ids go on: a new deploy never reuses a restored one's id.
    assert Deploy.objects.create(app=shop, trigger="manual").pk > max(
        r["pk"] for r in before if r["model"] == "deployments.deploy"
    )


def test_the_archive_holds_no_key_and_no_plaintext(state, tmp_path, key, settings):
    path = tmp_path / "koyra.tar.gz"
    _backup(path)
    with tarfile.open(path) as tar:
        names = tar.getnames()
        blob = b"".join(tar.extractfile(m).read() for m in tar.getmembers())
    assert sorted(names) == sorted(archive.LIMITS)
    for value in (key, settings.SECRET_KEY, SECRET_VALUE, REPO_TOKEN, "BEGIN OPENSSH"):
        assert value.encode() not in blob
    assert Image.objects.get(digest=DIGESTS["a"]).digest.encode() in blob
    manifest, members = archive.read(path)
    assert json.loads(members[archive.REGISTRY]) == [
        {"repo": "blog", "tag": "3" * 40, "digest": DIGESTS["c"]},
        {"repo": "shop", "tag": "1" * 40, "digest": DIGESTS["a"]},
        {"repo": "shop", "tag": "2" * 40, "digest": DIGESTS["b"]},
    ]
    assert manifest["fernet_keys"] == [crypto.key_fingerprint(key)]
    assert manifest["counts"]["deployments.deploy"] == 3
    assert manifest["migrations"]["apps"][0] == "0001_initial"


def test_the_fingerprint_is_what_sha256sum_prints(key):
    assert crypto.key_fingerprint(key) == hashlib.sha256(key.encode()).hexdigest()[:16]


def test_images_the_registry_no_longer_holds_are_marked_and_rollback_refuses_them(
    state, tmp_path, reg
):
    path = tmp_path / "koyra.tar.gz"
    _backup(path)
    _wipe()
    del reg.held[("shop", "1" * 40)]  # shop's v0: its rollback target
    del reg.held[("blog", "3" * 40)]  # blog's live release
    out = StringIO()
    err = StringIO()
    call_command("restore", str(path), stdout=out, stderr=err)
    assert "2 image(s) are not in this registry any more" in out.getvalue()
    assert f"127.0.0.1:5000/shop@{DIGESTS['a']}" in out.getvalue()
    assert "blog's live release's image was not kept" in err.getvalue()
    marked = set(Image.objects.filter(deleted__isnull=False).values_list("digest", flat=True))
    assert marked == {DIGESTS["a"], DIGESTS["c"]}
    with pytest.raises(ValidationError, match="not kept"):
        deploy_services.rollback_create(app=App.objects.get(name="shop"))


def test_without_the_key_nothing_is_written_and_the_missing_key_is_named(
    state, tmp_path, key, settings
):
    path = tmp_path / "koyra.tar.gz"
    _backup(path)
    _wipe()
    other = new_key()
    settings.KOYRA_FERNET_KEYS = [other]
    with pytest.raises(CommandError) as exc:
        _restore(path)
    message = str(exc.value)
    assert crypto.key_fingerprint(key) in message and crypto.key_fingerprint(other) in message
    assert "app shop: DATABASE_URL" in message and "nothing was restored" in message
    assert not App.objects.exists() and not get_user_model().objects.exists()
    settings.KOYRA_FERNET_KEYS = [other, key]  # the old key after a new one: it restores
    _restore(path)
    assert secret_services.secret_values(app=App.objects.get(name="shop"))


def test_a_database_that_is_not_empty_is_refused_unless_forced(state, tmp_path):
    path = tmp_path / "koyra.tar.gz"
    _backup(path)
    before = _snapshot()
    state["blog"].delete()
    get_user_model().objects.create_user("admin", password="pw-admin-123")
    with pytest.raises(CommandError, match=r"not empty .*--force"):
        _restore(path)
    assert get_user_model().objects.filter(username="admin").exists()
    _restore(path, "--force")
    assert _snapshot() == before
    assert not get_user_model().objects.filter(username="admin").exists()


def test_an_unreachable_registry_refuses_the_restore_but_not_the_backup(state, tmp_path, reg):
    reg.down = True
    path = tmp_path / "koyra.tar.gz"
    out, err = _backup(path)
    assert "the registry did not answer" in err and "0 registry manifest(s)" in out
    _wipe()
    with pytest.raises(CommandError, match="bootstrap_cluster"):
        _restore(path)
    assert not App.objects.exists()
    reg.down = False
    _restore(path)
    assert App.objects.count() == 2


def test_a_backup_of_another_schema_is_refused(state, tmp_path):
    path = tmp_path / "koyra.tar.gz"
    _backup(path)
    _wipe()
    _rewrite(path, lambda m, rows: m["migrations"]["deployments"].append("0099_future"))
    with pytest.raises(CommandError, match="deployments: backup at 0099_future"):
        _restore(path)
    assert not App.objects.exists()


def _field(model: str, name: str, value):
    def change(manifest, rows):
        row = next(r for r in rows if r["model"] == model)
        row["fields"][name] = value

    return change


def _twice(manifest, rows):
    rows.append(dict(rows[-1]))
    manifest["counts"][rows[-1]["model"]] += 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_field("apps.app", "name", "../etc"), "App name"),
        (_field("apps.app", "domains", ["a.example.com`) || Host(`x"]), "domains"),
        (_field("apps.app", "repo_url", "ext::sh -c id"), "repo_url"),
        (_field("apps.app", "branch", "--upload-pack=x"), "branch"),
        (_field("deployments.image", "digest", "sha256:../../v2"), "Image digest"),
        (_field("deployments.image", "commit", "HEAD"), "full commit SHA"),
        (_field("deployments.deploy", "status", "exploded"), "status"),
        (_field("deployments.deploy", "commit", "-oProxyCommand=x"), "full commit SHA"),
        (_field("deployments.deploy", "spec", {"image": "x", "privileged": True}), "spec"),
        (_field("deployments.deploy", "spec", {"image": f"evil.example/x@{DIGESTS['a']}"}), "spec"),
        (_field("deployments.deploy", "spec", ["a list"]), "spec"),
        (_field("deployments.deploy", "app", 999), "app"),
        (_field("deployments.logline", "deploy", 999), "refused"),
        (_field("secrets_vault.secret", "key", "BAD KEY"), "Secret name"),
        (_field("secrets_vault.secret", "token", 12), "token"),
        (_field("apps.app", "owner", ["nobody"]), "User matching query does not exist"),
        (_field("apps.app", "no_such_field", 1), "no_such_field"),
        (_field("deployments.deploy", "created", "yesterday"), "invalid format"),
        (lambda m, rows: rows.append({"model": "auth.permission", "pk": 1, "fields": {}}), "row"),
        (lambda m, rows: rows.append(rows[-1] | {"pk": "1"}), "row"),
        (lambda m, rows: rows.pop(), "counts"),
        (_twice, "twice"),
    ],
)
def test_an_altered_row_refuses_the_whole_restore(state, tmp_path, change, reason):
    path = tmp_path / "koyra.tar.gz"
    _backup(path)
    _wipe()
    _rewrite(path, change)
    with pytest.raises(CommandError) as exc:
        _restore(path)
    assert reason in str(exc.value)
    assert not App.objects.exists() and not get_user_model().objects.exists()
    assert not LogLine.objects.exists()


def test_refusals_never_quote_a_token_or_a_password_hash(state, tmp_path):
    path = tmp_path / "koyra.tar.gz"
    _backup(path)
    _wipe()
    hashes = []

    def change(manifest, rows):
        user = next(r for r in rows if r["model"] == "auth.user")
        hashes.append(user["fields"]["password"])
        user["fields"]["password"] = {"not": "a string"}
        user["fields"]["last_login"] = user["fields"]["password"]

    _rewrite(path, change)
    with pytest.raises(CommandError) as exc:
        _restore(path)
    assert hashes[0] not in str(exc.value)


def test_a_file_that_is_not_a_backup_is_refused_with_its_reason(state, tmp_path):
    path = tmp_path / "notes.tar.gz"
    path.write_bytes(b"just some text")
    with pytest.raises(CommandError, match="not a Koyra backup"):
        _restore(path)
    with pytest.raises(CommandError, match="cannot open"):
        _restore(tmp_path / "missing.tar.gz")


def test_backup_into_a_missing_directory_says_so(state, tmp_path):
    with pytest.raises(CommandError, match="is not a directory"):
        _backup(tmp_path / "nowhere" / "koyra.tar.gz")


def test_the_data_member_is_plain_django_serialization(state, tmp_path):
    """Readable by Django's own loaddata format (another tool can read it too)."""
    path = tmp_path / "koyra.tar.gz"
    _backup(path)
    _, members = archive.read(path)
    objects = list(serializers.deserialize("json", io.BytesIO(members[archive.DATA])))
    assert {type(o.object) for o in objects} >= {App, Deploy, Image, Membership}


@pytest.mark.django_db(transaction=True)
def test_outside_any_transaction_backup_and_restore_commit_their_own(state, tmp_path):
    """As the commands run in production: the backup reads in a transaction of its own
    (REPEATABLE READ on PostgreSQL), the restore writes in one."""
    before = _snapshot()
    path = tmp_path / "koyra.tar.gz"
    _backup(path)
    _wipe()
    _restore(path)
    assert _snapshot() == before
