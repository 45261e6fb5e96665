from __future__ import annotations

from unittest.mock import patch

import pytest
from django.core.cache import cache

from deployments.boundaries import engine
from deployments.models import PruneRun
from tests import base

cast = base.cast


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


@patch("deployments.boundaries.engine.disk_usage", autospec=True)
def test_it_shows_images_registry_and_build_cache(disk_usage, client, cast):
    disk_usage.return_value = {"images": 3 * 1024**3, "registry": 512 * 1024**2, "build_cache": 0}
    PruneRun.objects.create(summary="prune: 2 image(s) deleted; freed 40.0 MB")
    client.force_login(cast.staff)
    resp = client.get("/system/disk/")
    text = resp.content.decode()
    assert resp.status_code == 200
    assert "3.0\xa0GB" in text and "512.0\xa0MB" in text
    assert "freed 40.0 MB" in text
    client.get("/system/disk/")
    assert disk_usage.call_count == 1  # cached: the engine is not asked on every view


@patch("deployments.boundaries.engine.disk_usage", autospec=True)
def test_an_engine_that_does_not_answer_is_said_not_a_500(disk_usage, client, cast):
    disk_usage.side_effect = engine.EngineError("Cannot reach the Docker engine")
    client.force_login(cast.superuser)
    resp = client.get("/system/disk/")
    assert resp.status_code == 200
    assert "Disk use unknown: Cannot reach the Docker engine" in resp.content.decode()


def test_it_needs_a_login(client, db):
    resp = client.get("/system/disk/")
    assert resp.status_code == 302 and "/accounts/login/" in resp["Location"]


def test_the_apps_page_loads_it(client, cast):
    client.force_login(cast.owner)
    assert 'hx-get="/system/disk/"' in client.get("/apps/").content.decode()


@pytest.mark.parametrize("who", ["owner", "admin", "member", "viewer", "outsider"])
@patch("deployments.boundaries.engine.disk_usage", autospec=True)
def test_the_machine_s_disk_is_the_operator_s_not_a_tenant_s(disk_usage, client, cast, who):
    """Owners and members of apps are tenants: the size of everyone's images is not theirs."""
    disk_usage.return_value = {"images": 3 * 1024**3, "registry": 0, "build_cache": 0}
    PruneRun.objects.create(summary="prune: 2 image(s) deleted; freed 40.0 MB")
    client.force_login(getattr(cast, who))
    resp = client.get("/system/disk/")
    assert resp.status_code == 204 and resp.content == b""
    assert disk_usage.call_count == 0
