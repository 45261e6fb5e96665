"""Koyra's registry login: made once, kept 0600 in the data directory, handed to the registry
as a bcrypt htpasswd in a versioned Swarm secret, and sent (HTTP Basic) on every registry API
call. The registry API is a real HTTP server on the loopback that checks the login."""

from __future__ import annotations

import base64
import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest.mock import patch

import bcrypt
import pytest

from deployments import cluster, registry_auth
from deployments.boundaries import engine, registry


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.KOYRA_DATA_DIR = tmp_path
    return tmp_path


def test_the_login_is_made_once_with_mode_0600_and_kept(data_dir):
    first = registry_auth.ensure()
    path = data_dir / registry.AUTH_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first["username"] == "koyra"
    assert len(first["password"]) >= 40  # 32 random bytes, urlsafe base64
    assert registry_auth.ensure() == first == registry.credentials()


def test_every_data_dir_gets_its_own_random_password(settings, tmp_path):
    seen = set()
    for i in range(5):
        settings.KOYRA_DATA_DIR = tmp_path / str(i)
        seen.add(registry_auth.ensure()["password"])
    assert len(seen) == 5


def test_no_login_before_bootstrap(data_dir):
    assert registry.credentials() is None


@pytest.mark.parametrize("content", ["", "{", "[]", '{"username": "koyra"}', "null"])
def test_an_unreadable_login_is_a_clear_error_that_never_quotes_the_file(data_dir, content):
    (data_dir / registry.AUTH_FILE).write_text(content + " hunter2-secret")
    with pytest.raises(registry.RegistryError, match="bootstrap_cluster") as info:
        registry.credentials()
    assert "hunter2" not in str(info.value)


def test_the_htpasswd_is_bcrypt_of_exactly_this_password(data_dir):
    creds = registry_auth.ensure()
    line = registry_auth.htpasswd(creds)
    user, _, hashed = line.strip().partition(":")
    assert user == "koyra"
    assert hashed.startswith("$2b$")
    assert creds["password"] not in line
    assert bcrypt.checkpw(creds["password"].encode(), hashed.encode())
    assert not bcrypt.checkpw((creds["password"] + "x").encode(), hashed.encode())
    assert not bcrypt.checkpw(creds["password"][:-1].encode(), hashed.encode())


def test_the_secret_name_follows_the_login_and_says_nothing_of_it(data_dir):
    creds = registry_auth.ensure()
    name = registry_auth.secret_name(creds)
    assert name == registry_auth.secret_name(dict(creds))
    assert name != registry_auth.secret_name({**creds, "password": creds["password"] + "x"})
    assert name.startswith("koyra-registry-htpasswd-")
    assert creds["password"] not in name


def _spec(name: str) -> engine.ServiceSpec:
    return cluster.registry_spec({"id": "sid", "name": name, "file": registry_auth.HTPASSWD_FILE})


def test_the_registry_spec_requires_the_login():
    spec = _spec("koyra-registry-htpasswd-abc")
    assert spec.env["REGISTRY_AUTH"] == "htpasswd"
    assert spec.env["REGISTRY_AUTH_HTPASSWD_PATH"] == "/run/secrets/koyra-registry-htpasswd"
    assert spec.secrets == [
        {"id": "sid", "name": "koyra-registry-htpasswd-abc", "file": "koyra-registry-htpasswd"}
    ]
    assert spec.env["REGISTRY_STORAGE_DELETE_ENABLED"] == "true"  # retention deletes


def test_the_registry_spec_is_unchanged_for_the_same_login_and_changes_with_a_new_one():
    assert _spec("a").fingerprint() == _spec("a").fingerprint()
    assert _spec("a").fingerprint() != _spec("b").fingerprint()


def test_a_services_pull_login_is_neither_in_its_fingerprint_nor_its_repr():
    plain = engine.ServiceSpec(name="x_web", image="127.0.0.1:5000/x@sha256:" + "a" * 64)
    login = {"username": "koyra", "password": "pw-" + "z" * 40, "serveraddress": "127.0.0.1:5000"}
    with_auth = engine.ServiceSpec(name=plain.name, image=plain.image, registry_auth=login)
    assert with_auth.fingerprint() == plain.fingerprint()
    assert "pw-" not in repr(with_auth)


# --- bootstrap_cluster ----------------------------------------------------------------------


@pytest.fixture
def fake_engine():
    with (
        patch("deployments.boundaries.engine.swarm_ensure", autospec=True, return_value="active"),
        patch("deployments.boundaries.engine.network_ensure", autospec=True, return_value=False),
        patch("deployments.boundaries.engine.image_ensure", autospec=True),
        patch("deployments.boundaries.engine.service_apply", autospec=True) as apply,
        patch("deployments.boundaries.engine.secret_ensure", autospec=True) as ensure,
        patch("deployments.boundaries.engine.secrets_list", autospec=True) as listed,
        patch("deployments.boundaries.engine.secret_remove", autospec=True) as removed,
        patch("deployments.boundaries.registry.wait_ready", autospec=True),
    ):
        apply.return_value = "created"
        ensure.side_effect = lambda name, value, labels: f"id-{name}"
        yield apply, ensure, listed, removed


def test_bootstrap_gives_the_registry_its_htpasswd_and_drops_older_ones(data_dir, fake_engine):
    apply, ensure, listed, removed = fake_engine
    said: list[str] = []
    listed.return_value = [{"id": "old", "name": "koyra-registry-htpasswd-0000000000000000"}]
    assert cluster.cluster_bootstrap(ingress=False, say=said.append)
    creds = registry.credentials()
    assert creds is not None
    name, value, _labels = ensure.call_args.args
    assert name == registry_auth.secret_name(creds)
    assert bcrypt.checkpw(creds["password"].encode(), value.split(":", 1)[1].strip().encode())
    spec = apply.call_args.args[0]
    assert spec.secrets == [{"id": f"id-{name}", "name": name, "file": "koyra-registry-htpasswd"}]
    removed.assert_called_once_with("old")
    assert creds["password"] not in "\n".join(said)
    assert creds["password"] not in json.dumps(spec.__dict__, default=str)


def test_a_second_bootstrap_keeps_the_login_and_so_the_registry_spec(data_dir, fake_engine):
    apply = fake_engine[0]
    cluster.cluster_bootstrap(ingress=False, say=lambda s: None)
    cluster.cluster_bootstrap(ingress=False, say=lambda s: None)
    first, second = (c.args[0] for c in apply.call_args_list)
    assert first.fingerprint() == second.fingerprint()


# --- the registry API with the login ---------------------------------------------------------


class _AuthRegistry:
    """Answers 401 unless the request carries Basic `koyra:<password>`; records what came."""

    def __init__(self, password: str) -> None:
        expected = "Basic " + base64.b64encode(f"koyra:{password}".encode()).decode()
        seen: list[tuple[str, str | None]] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append((self.command, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="koyra-registry"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"name": "app", "tags": ["b", "a"]}).encode()
                self.send_response(202 if self.command == "DELETE" else 200)
                self.send_header("Docker-Content-Digest", "sha256:" + "e" * 64)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def api(data_dir, settings) -> Iterator[_AuthRegistry]:
    creds = registry_auth.ensure()
    reg = _AuthRegistry(creds["password"])
    settings.KOYRA_REGISTRY = f"127.0.0.1:{reg.server.server_address[1]}"
    yield reg
    reg.server.shutdown()
    reg.server.server_close()


def test_every_registry_call_logs_in(api):
    assert registry.tags("app") == ["a", "b"]
    assert registry.manifest_digest("app", "a") == "sha256:" + "e" * 64
    assert registry.delete_manifest("app", "sha256:" + "e" * 64) is True
    registry.wait_ready(2)
    assert [m for m, _ in api.seen] == ["GET", "HEAD", "DELETE", "GET"]
    assert all(a and a.startswith("Basic ") for _, a in api.seen)


def test_a_refused_login_says_what_to_do_and_never_shows_the_password(api, data_dir):
    creds = registry.credentials()
    assert creds is not None
    (data_dir / registry.AUTH_FILE).write_text(
        json.dumps({"username": "koyra", "password": "wrong-" + "q" * 30})
    )
    for call in (
        lambda: registry.tags("app"),
        lambda: registry.manifest_digest("app", "a"),
        lambda: registry.delete_manifest("app", "sha256:" + "e" * 64),
        lambda: registry.wait_ready(1),
    ):
        with pytest.raises(registry.RegistryError, match=r"401.*bootstrap_cluster") as info:
            call()
        assert "wrong-" not in str(info.value) and creds["password"] not in str(info.value)
