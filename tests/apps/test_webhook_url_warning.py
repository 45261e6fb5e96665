"""The app page warns when the payload URL (from KOYRA_BASE_URL) is one GitHub cannot reach."""

from __future__ import annotations

import pytest

from apps.services import app_webhook_url_warning
from tests import base

cast = base.cast

PRIVATE = [
    "http://127.0.0.1:8000",
    "http://127.8.9.10",
    "http://localhost:8000",
    "http://LOCALHOST",
    "http://koyra.localhost",
    "http://10.0.0.5",
    "http://172.16.3.4",
    "http://172.31.255.255",
    "http://192.168.1.20:8080",
    "http://169.254.169.254",
    "http://100.64.0.1",
    "http://0.0.0.0:8000",
    "http://[::1]:8000",
    "http://[fd00::1]",
    "http://[fe80::1]",
    "http://[::ffff:127.0.0.1]",
    "http://koyra",
    "http://koyra.local",
    "http://build-box.lan",
    "http://koyra.internal",
    "http://nas.home.arpa",
    "http://host.localdomain",
    "http://localhost.",
    "http://",
]
PUBLIC = [
    "https://koyra.example.com",
    "https://koyra.example.com:8443",
    "http://203.0.114.7",
    "http://8.8.8.8",
    "https://[2606:4700:4700::1111]",
    "https://deploy.acme.io.",
    "https://local.example.com",
    "https://localhost.example.com",
]


@pytest.mark.parametrize("base_url", PRIVATE)
def test_a_loopback_or_private_host_is_warned_about(base_url):
    warning = app_webhook_url_warning(url=f"{base_url}/webhooks/github/shop/")
    assert "GitHub cannot deliver to this URL" in warning
    assert "Set KOYRA_BASE_URL to the public address" in warning


@pytest.mark.parametrize("base_url", PUBLIC)
def test_a_public_host_is_not(base_url):
    assert app_webhook_url_warning(url=f"{base_url}/webhooks/github/shop/") == ""


@pytest.mark.parametrize(
    "who", ["owner", "admin", "member", "viewer", "superuser", "staff", "outsider"]
)
@pytest.mark.parametrize(
    ("base_url", "warned"),
    [("http://127.0.0.1:8000", True), ("https://koyra.example.com", False)],
)
def test_the_app_page_shows_the_warning_beside_the_url(
    client, cast, settings, who, base_url, warned
):
    settings.KOYRA_BASE_URL = base_url
    client.force_login(getattr(cast, who))
    resp = client.get("/apps/shop/")
    if who in ("staff", "outsider"):
        assert resp.status_code == 404
        return
    html = resp.content.decode()
    assert f"<code>{base_url}/webhooks/github/shop/</code>" in html
    assert ('id="webhook-unreachable"' in html) == warned
