from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from unittest.mock import patch

import pytest
from django.core.management import call_command
from django.utils import timezone

from deployments.boundaries import engine
from deployments.models import Deploy
from deployments.release_spec import ReleaseSpec
from tests.factories import AppFactory, DeployFactory

pytestmark = pytest.mark.django_db

SERVICES = "deployments.boundaries.engine.services_replicas"


def _run(*args: str, counts=None, error: str = "") -> tuple[str, object]:
    out = StringIO()
    effect = engine.EngineError(error) if error else None
    with patch(SERVICES, autospec=True, return_value=counts or {}, side_effect=effect) as m:
        call_command("list_apps", *args, stdout=out)
    return out.getvalue(), m


def _deploy(app, status, *, commit="a" * 40, minutes=0, domains=()):
    at = timezone.now() - timedelta(minutes=60 - minutes)
    return DeployFactory.create(
        app=app,
        status=status,
        commit=commit,
        created=at,
        finished=None if status in Deploy.PENDING else at + timedelta(seconds=30),
        spec=ReleaseSpec(domains=list(domains)).to_json(),
    )


def test_a_failed_latest_deploy_leaves_the_live_release_serving():
    app = AppFactory.create(name="shop", domains=["shop.example.com"])
    live = _deploy(app, Deploy.Status.LIVE, commit="1" * 40, domains=["shop.example.com", "m.io"])
    failed = _deploy(app, Deploy.Status.FAILED, commit="2" * 40, minutes=10)
    out, _ = _run("--json", counts={"shop_web": (2, 2)})
    [row] = json.loads(out)
    assert row == {
        "name": "shop",
        "state": "serving",
        "serving": {"deploy": live.pk, "commit": "1" * 40, "since": live.finished.isoformat()},
        "latest_deploy": {"id": failed.pk, "status": "failed"},
        "domains": ["shop.example.com", "m.io"],
        "replicas": {"healthy": 2, "total": 2},
    }


@pytest.mark.parametrize(
    ("status", "serving"),
    [(s, False) for s in Deploy.Status.values if s != Deploy.Status.LIVE]
    + [(Deploy.Status.LIVE, True)],
)
def test_only_a_live_deploy_serves(status, serving):
    app = AppFactory.create(name="shop")
    d = _deploy(app, status)
    [row] = json.loads(_run("--json")[0])
    assert (row["serving"] is not None) is serving
    assert row["latest_deploy"] == {"id": d.pk, "status": status}


def test_every_app_is_listed_by_name_with_one_engine_call_for_all():
    for name in ("zeta", "alpha", "mid"):
        AppFactory.create(name=name, domains=[f"{name}.io"])
    out, engine_call = _run("--json", counts={"alpha_web": (1, 3), "other_web": (1, 1)})
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["alpha", "mid", "zeta"]
    engine_call.assert_called_once_with("koyra.app")
    replicas = {r["name"]: r["replicas"] for r in rows}
    assert replicas["alpha"] == {"healthy": 1, "total": 3}
    # No service (never deployed, or removed): nothing runs.
    assert replicas["mid"] == {"healthy": 0, "total": 0}
    # Not serving: the app's configured domains.
    assert rows[1]["serving"] is None and rows[1]["domains"] == ["mid.io"]
    assert rows[1]["latest_deploy"] is None


def test_json_keys_are_stable_without_apps_and_deploys():
    assert json.loads(_run("--json")[0]) == []
    AppFactory.create(name="shop")
    [row] = json.loads(_run("--json")[0])
    assert set(row) == {"name", "state", "serving", "latest_deploy", "domains", "replicas"}


def test_an_unreachable_engine_shows_a_question_mark_not_a_failure():
    app = AppFactory.create(name="shop")
    _deploy(app, Deploy.Status.LIVE)
    out, _ = _run(error="Cannot reach the Docker engine")
    assert out.split()[-2:] == ["?", "-"]
    [row] = json.loads(_run("--json", error="Cannot reach the Docker engine")[0])
    assert row["replicas"] is None and row["serving"] is not None


def test_a_live_release_with_no_healthy_task_reads_down_with_its_counts():
    app = AppFactory.create(name="shop")
    _deploy(app, Deploy.Status.LIVE)
    [row] = json.loads(_run("--json", counts={"shop_web": (0, 2)})[0])
    assert row["state"] == "down" and row["replicas"] == {"healthy": 0, "total": 2}


def test_healthy_never_reads_more_than_desired_during_a_start_first_update():
    AppFactory.create(name="shop")
    [row] = json.loads(_run("--json", counts={"shop_web": (2, 1)})[0])
    assert row["replicas"] == {"healthy": 1, "total": 1}


def test_plain_output_is_one_aligned_line_per_app():
    long = AppFactory.create(name="a-rather-long-app-name", domains=["x.io"])
    short = AppFactory.create(name="b")
    live = _deploy(long, Deploy.Status.LIVE, commit="c" * 40)
    queued = _deploy(short, Deploy.Status.QUEUED)
    out, _ = _run(counts={"a-rather-long-app-name_web": (1, 1)})
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[:3] == ["a-rather-long-app-name", "serving", f"#{live.pk}"]
    assert "c" * 12 in lines[0] and "c" * 13 not in lines[0] and "1/1" in lines[0]
    assert lines[1].split()[:3] == ["b", "deploying", "-"]
    assert f"latest #{queued.pk} queued" in lines[1]
    # Columns line up: each column starts at the same offset on every line.
    for column in ("latest #", "/"):
        assert len({line.index(column) for line in lines}) == 1, (column, lines)


def test_no_apps_says_how_to_make_one():
    assert "create_app" in _run()[0]
