"""ReleaseSpec: what a build records and a redeploy or rollback re-applies (Deploy.spec)."""

from __future__ import annotations

import json

import pytest

from deployments import swarm_spec
from deployments.release_spec import ReleaseSpec
from tests.factories import AppFactory, DeployFactory

# A row exactly as the code before ReleaseSpec wrote it (dict keys, labels added after).
LEGACY_ROW = {
    "image": "127.0.0.1:5000/shop@sha256:" + "a" * 64,
    "entrypoint": [],
    "cmd": ["httpd", "-f", "-p", "8000"],
    "env": {"LOG_LEVEL": "info"},
    "secrets": ["DATABASE_URL"],
    "predeploy": ["echo warm"],
    "port": 8000,
    "replicas": 2,
    "healthcheck": {"path": "/", "interval": 3, "timeout": 3, "retries": 3, "start_period": 10},
    "domains": ["shop.example.com", "www.shop.example.com"],
    "manifest_domains": ["www.shop.example.com"],
    "memory": None,
    "nano_cpus": None,
    "shell": True,
    "labels": {"koyra.app": "shop", "traefik.enable": "true"},
}


def test_a_row_written_before_the_class_loads_with_every_value():
    spec = ReleaseSpec.from_json(LEGACY_ROW)
    # Fields added since load with their defaults: no placement constraints.
    assert spec.to_json() == {**LEGACY_ROW, "manifest_env": LEGACY_ROW["env"], "constraints": []}
    assert spec.healthcheck == LEGACY_ROW["healthcheck"] and spec.replicas == 2


def test_the_oldest_rows_without_manifest_domains_keep_their_domains_on_redeploy():
    row = {k: v for k, v in LEGACY_ROW.items() if k not in ("manifest_domains", "labels")}
    spec = ReleaseSpec.from_json(row)
    assert spec.manifest_domains == row["domains"] and spec.labels == {}
    assert spec.with_domains([]).domains == row["domains"]


def test_unknown_keys_of_a_row_are_ignored_not_an_error():
    spec = ReleaseSpec.from_json({**LEGACY_ROW, "added_by_a_later_version": 1})
    assert spec.image == LEGACY_ROW["image"]


def test_it_survives_the_json_column_round_trip():
    spec = ReleaseSpec.from_json(LEGACY_ROW)
    assert ReleaseSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_the_apps_current_domains_come_first_and_are_not_repeated():
    spec = ReleaseSpec.from_json(LEGACY_ROW)
    assert spec.with_domains(["new.example.com", "www.shop.example.com"]).domains == [
        "new.example.com",
        "www.shop.example.com",
    ]


@pytest.mark.django_db
def test_a_legacy_row_builds_the_service_it_built_before():
    app = AppFactory(name="shop")
    deploy = DeployFactory(app=app, spec=LEGACY_ROW)
    deploy.refresh_from_db()
    svc = swarm_spec.service_spec(
        app=app, deploy_id=deploy.pk, spec=ReleaseSpec.from_json(deploy.spec), secret_refs=[]
    )
    assert svc.image == LEGACY_ROW["image"] and svc.replicas == 2
    assert svc.args == ["koyra-start", "httpd", "-f", "-p", "8000"]
    assert "echo warm" in svc.command[2]
    assert svc.labels["traefik.http.routers.shop.rule"] == (
        "Host(`shop.example.com`) || Host(`www.shop.example.com`)"
    )
