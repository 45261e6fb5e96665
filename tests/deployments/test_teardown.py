"""Deleting an app (deployments.teardown, `delete_app`): what it runs goes first, then the row;
without --yes nothing changes; when the engine or registry refuses, the row stays. Only the
boundary modules are patched: a small in-memory engine and registry stand behind them."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.models import App
from deployments import teardown
from deployments.boundaries import engine, registry
from deployments.models import Deploy
from secrets_vault.models import Secret
from tests.factories import AppFactory, DeployFactory, ImageFactory

pytestmark = pytest.mark.django_db
DIGEST = "sha256:" + "b" * 64
OTHER = "sha256:" + "c" * 64


class Outside:
    """The engine's services, secrets and images and the registry's manifests, in memory."""

    def __init__(self, monkeypatch) -> None:
        self.services: dict[str, dict] = {"shop_web": {"Spec": {}}, "other_web": {"Spec": {}}}
        self.secrets = [
            {"id": "s1", "name": "koyra-shop-1", "labels": {"koyra.app": "shop", "koyra.key": "A"}},
            {"id": "s2", "name": "koyra-shop-2", "labels": {"koyra.app": "shop", "koyra.key": "B"}},
            {"id": "s3", "name": "koyra-other-1", "labels": {"koyra.app": "other"}},
        ]
        self.manifests = {"shop": {"a" * 40: DIGEST, "old": OTHER}, "other": {"x": OTHER}}
        self.local = {f"127.0.0.1:5000/shop:{'a' * 40}", "127.0.0.1:5000/other:x"}
        self.down = False
        self.calls: list[str] = []
        for name in (
            "service_get",
            "service_remove",
            "secrets_list",
            "secret_remove",
            "image_remove",
        ):
            monkeypatch.setattr(engine, name, getattr(self, name))
        for name in ("tags", "manifest_digest", "delete_manifest"):
            monkeypatch.setattr(registry, name, getattr(self, name))

    def _engine(self) -> None:
        if self.down:
            raise engine.EngineError("Cannot reach the Docker engine (refused)")

    def service_get(self, name):
        self._engine()
        return self.services.get(name)

    def service_remove(self, name):
        self._engine()
        self.calls.append(f"service_remove {name}")
        return self.services.pop(name, None) is not None

    def secrets_list(self, label):
        self._engine()
        app = label.split("=", 1)[1]
        return [s for s in self.secrets if s["labels"].get("koyra.app") == app]

    def secret_remove(self, sid):
        self._engine()
        self.calls.append(f"secret_remove {sid}")
        before = len(self.secrets)
        self.secrets = [s for s in self.secrets if s["id"] != sid]
        return len(self.secrets) < before

    def image_remove(self, ref):
        self._engine()
        self.calls.append(f"image_remove {ref}")
        if ref in self.local:
            self.local.discard(ref)
            return True
        return False

    def tags(self, repo):
        return sorted(self.manifests.get(repo, {}))

    def manifest_digest(self, repo, tag):
        return self.manifests.get(repo, {}).get(tag)

    def delete_manifest(self, repo, digest):
        self.calls.append(f"delete_manifest {repo} {digest}")
        tags = self.manifests.get(repo, {})
        gone = [t for t, d in tags.items() if d == digest]
        for t in gone:
            del tags[t]
        return bool(gone)


@pytest.fixture
def outside(monkeypatch):
    return Outside(monkeypatch)


@pytest.fixture
def shop():
    app = AppFactory(name="shop", domains=["shop.example.com"])
    image = ImageFactory(app=app, digest=DIGEST)
    DeployFactory(app=app, status=Deploy.Status.LIVE, image=image, spec={"domains": ["m.shop.io"]})
    Secret.objects.create(app=app, key="A", token="t")
    AppFactory(name="other", domains=["other.example.com"])
    return app


def _run(*args) -> str:
    out = StringIO()
    call_command("delete_app", *args, stdout=out)
    return out.getvalue()


def test_without_yes_it_says_what_it_would_remove_and_changes_nothing(outside, shop):
    out = _run("shop")
    for expected in (
        "would remove service shop_web",
        "would stop routing m.shop.io",
        "would stop routing shop.example.com",
        "would remove Swarm secret koyra-shop-1 (A)",
        "would remove Swarm secret koyra-shop-2 (B)",
        f"would delete registry image shop@{DIGEST} ({'a' * 40})",
        f"would delete registry image shop@{OTHER} (old)",
        f"would remove local image 127.0.0.1:5000/shop:{'a' * 40}",
        "would delete the app shop",
        "nothing changed: run delete_app shop --yes",
    ):
        assert expected in out
    assert "other" not in out.replace("others", "")
    assert outside.calls == []
    assert App.objects.filter(name="shop").exists()
    assert Deploy.objects.filter(app=shop).count() == 1


def test_with_yes_everything_of_the_app_goes_and_nothing_of_another(outside, shop):
    out = _run("shop", "--yes")
    assert "deleted the app shop" in out
    assert not App.objects.filter(name="shop").exists()
    assert not Deploy.objects.filter(app_id=shop.pk).exists()
    assert not Secret.objects.filter(app_id=shop.pk).exists()
    assert set(outside.services) == {"other_web"}
    assert [s["id"] for s in outside.secrets] == ["s3"]
    assert outside.manifests == {"shop": {}, "other": {"x": OTHER}}
    assert outside.local == {"127.0.0.1:5000/other:x"}
    # The service goes before its secrets (Swarm refuses to remove a mounted one).
    assert outside.calls.index("service_remove shop_web") < outside.calls.index("secret_remove s1")
    # The name and its domains are free again.
    App.objects.create(name="shop", repo_url="https://github.com/a/b", domains=[])
    AppFactory(name="shop2", domains=["shop.example.com"]).full_clean()


def test_a_release_job_left_over_is_removed_too(outside, shop):
    outside.services["shop_release"] = {"Spec": {}}
    assert "would remove service shop_release" in _run("shop")
    _run("shop", "--yes")
    assert "shop_release" not in outside.services


def test_an_app_never_deployed_is_deleted(outside):
    AppFactory(name="empty")
    out = _run("empty", "--yes")
    assert "deleted the app empty" in out and not App.objects.filter(name="empty").exists()
    assert all("other" not in c for c in outside.calls)


def test_when_the_engine_is_down_the_app_stays_and_the_error_says_what_to_do(outside, shop):
    outside.down = True
    for args in (("shop",), ("shop", "--yes")):
        with pytest.raises(CommandError, match=r"stays in Koyra.*delete it again"):
            _run(*args)
    assert App.objects.filter(name="shop").exists()


def test_when_the_registry_refuses_deletes_the_app_stays(outside, shop, monkeypatch):
    def refuse(repo, digest):
        raise registry.RegistryError("the registry refuses deletes")

    monkeypatch.setattr(registry, "delete_manifest", refuse)
    with pytest.raises(CommandError, match="refuses deletes"):
        _run("shop", "--yes")
    assert App.objects.filter(name="shop").exists()
    assert Deploy.objects.filter(app=shop).count() == 1
    # Run again once the registry allows it: it finishes what is left.
    monkeypatch.setattr(registry, "delete_manifest", outside.delete_manifest)
    _run("shop", "--yes")
    assert not App.objects.filter(name="shop").exists()
    assert outside.manifests["shop"] == {}


def test_a_secret_swarm_keeps_holding_leaves_the_app(outside, shop, monkeypatch):
    monkeypatch.setattr(engine, "secret_remove", lambda sid: False)
    monkeypatch.setattr(teardown, "SECRET_WAIT_SECONDS", 0)
    with pytest.raises(CommandError, match=r"still holds the secret.*again"):
        _run("shop", "--yes")
    assert App.objects.filter(name="shop").exists()


def test_a_queued_deploy_is_cancelled_first(outside, shop):
    queued = DeployFactory(app=shop, status=Deploy.Status.QUEUED)
    assert f"would cancel deploy #{queued.pk} (queued)" in _run("shop")
    queued.refresh_from_db()
    assert queued.status == Deploy.Status.QUEUED  # a dry run cancels nothing
    _run("shop", "--yes")
    assert not App.objects.filter(name="shop").exists()


def test_a_running_deploy_that_does_not_stop_refuses_the_delete(outside, shop):
    running = DeployFactory(app=shop, status=Deploy.Status.BUILDING)
    with pytest.raises(teardown.TeardownError, match=f"#{running.pk} of shop is still building"):
        teardown.app_delete(app=shop, wait=0)
    running.refresh_from_db()
    assert running.cancel_requested  # asked to stop
    assert App.objects.filter(name="shop").exists()
    assert outside.calls == []  # nothing removed while it runs


def test_unknown_names_are_refused(outside):
    for name in ("nope", "Shop", "shop\n", "a\x00b"):
        with pytest.raises(CommandError, match="No app named"):
            _run(name, "--yes")
