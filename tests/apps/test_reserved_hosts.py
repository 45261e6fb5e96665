"""Koyra's own host names (KOYRA_BASE_URL's host, ALLOWED_HOSTS, localhost, 127.0.0.1) cannot be
an app's domain, whichever way it is set: app_create, app_update, the admin (the model's
clean), and a manifest's run.domains at deploy time. The admin also refuses a domain another
app already uses."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps import services, validators
from apps.models import App
from deployments import pipeline
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db
REPO = "https://github.com/acme/shop.git"


@pytest.fixture(autouse=True)
def _koyra_hosts(settings):
    settings.KOYRA_BASE_URL = "https://Koyra.Example.com:8443"
    settings.ALLOWED_HOSTS = ["ops.example.net", ".example.org", "*", " panel.example.io "]


RESERVED = [
    "koyra.example.com",
    "ops.example.net",
    "example.org",
    "panel.example.io",
    "localhost",
    "127.0.0.1",
]
FREE = ["shop.example.com", "shop.example.org", "ops.example.net.evil.io", "koyra.example.co"]


def test_reserved_hosts_are_koyras_own_names():
    assert validators.reserved_hosts() == set(RESERVED)


@pytest.mark.parametrize("host", RESERVED)
def test_a_reserved_host_is_refused(host):
    with pytest.raises(ValidationError, match="Koyra's own host name"):
        validators.validate_domain_not_reserved(host)


@pytest.mark.parametrize("host", FREE)
def test_other_hosts_are_free(host):
    validators.validate_domain_not_reserved(host)


@pytest.mark.parametrize("host", RESERVED[:4])
def test_create_and_update_refuse_a_reserved_host(host):
    with pytest.raises(ValidationError, match="Koyra's own host name"):
        services.app_create(name="shop", repo_url=REPO, domains=["a.example.com", host])
    assert not App.objects.exists()
    app, _ = services.app_create(name="shop", repo_url=REPO, domains=["a.example.com"])
    with pytest.raises(ValidationError, match="Koyra's own host name"):
        services.app_update(app=app, domains=[host.upper()])  # lowercased, then refused
    app.refresh_from_db()
    assert app.domains == ["a.example.com"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_localhost_and_the_loopback_address_are_refused_too(host):
    with pytest.raises(ValidationError):  # not even a host name an app can have
        services.app_create(name="shop", repo_url=REPO, domains=[host])
    assert not App.objects.exists()


def _admin_add(admin_client, name: str, domains: str):
    return admin_client.post(
        reverse("admin:apps_app_add"),
        {
            "name": name,
            "repo_url": REPO,
            "branch": "main",
            "trigger": "push",
            "domains": domains,
            "workflows": "[]",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )


@pytest.mark.parametrize("host", RESERVED[:4])
def test_the_admin_refuses_a_reserved_host(admin_client, host):
    res = _admin_add(admin_client, "shop", f'["{host}"]')
    assert res.status_code == 200 and "Koyra&#x27;s own host name" in res.content.decode()
    assert not App.objects.exists()


def test_the_admin_refuses_a_domain_another_app_uses(admin_client):
    AppFactory(name="blog", domains=["blog.example.com"])
    res = _admin_add(admin_client, "shop", '["shop.example.com", "blog.example.com"]')
    assert res.status_code == 200 and "already routes to the app" in res.content.decode()
    assert not App.objects.filter(name="shop").exists()
    res = _admin_add(admin_client, "shop", '["shop.example.com"]')
    assert res.status_code == 302
    assert App.objects.get(name="shop").domains == ["shop.example.com"]


def test_an_app_keeps_its_own_domains_on_save():
    app = AppFactory(name="blog", domains=["blog.example.com"])
    app.full_clean(exclude=["webhook_secret_token"])  # its own domains are no clash


@pytest.mark.parametrize("host", RESERVED)
def test_a_manifest_domain_that_is_koyras_own_fails_the_deploy(host):
    me = AppFactory(name="shop")
    with pytest.raises(pipeline.DeployFailed, match="Koyra's own host name"):
        pipeline._check_domains(me, ["shop.example.com", host])
    pipeline._check_domains(me, FREE)
