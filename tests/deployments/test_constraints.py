"""`run.constraints` (SPEC §2): Swarm placement constraints, validated in apps/validators.py,
read from the manifest with the file, line and field in every error, and applied to the app's
service (issue 13)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.validators import MAX_CONSTRAINTS, placement_constraint
from deployments import swarm_spec
from deployments.manifest import ManifestError, parse
from deployments.release_spec import ReleaseSpec
from tests.factories import AppFactory, DeployFactory


@pytest.mark.parametrize(
    ("value", "swarm"),
    [
        ("node.labels.tier==web", "node.labels.tier==web"),
        ("node.labels.tier == web", "node.labels.tier==web"),
        ("node.role==manager", "node.role==manager"),
        ("node.role != worker", "node.role!=worker"),
        ("node.hostname==db-1.internal", "node.hostname==db-1.internal"),
        ("node.id==abc123xyz", "node.id==abc123xyz"),
        ("node.platform.os==linux", "node.platform.os==linux"),
        ("node.platform.arch!=aarch64", "node.platform.arch!=aarch64"),
        ("engine.labels.storage==ssd", "engine.labels.storage==ssd"),
        ("node.labels.com.example.zone==eu-west_1", "node.labels.com.example.zone==eu-west_1"),
        ("node.labels.a==b", "node.labels.a==b"),
    ],
)
def test_constraints_swarm_knows_are_taken_in_swarms_form(value, swarm):
    assert placement_constraint(value) == swarm


@pytest.mark.parametrize(
    "value",
    [
        "",
        "node.labels.tier=web",  # one '='
        "node.labels.tier==",
        "==web",
        "node.labels.==web",
        "node.labels.tier===web",
        "node.name==a",  # not an attribute Swarm knows
        "container.labels.x==y",
        "node.role==admin",
        "node.role==Manager",
        "node.labels.tier==web\n",  # fullmatch: no trailing newline
        "node.labels.tier==web;rm -rf /",
        "node.labels.tier==$(id)",
        "node.labels.tier==web && node.role==worker",
        "node.labels.tier==w\u00e9b",
        "node.labels.tier==-web",
        "node.labels.tier==web.",
        "node.labels.tier\t==web",
        "node.labels." + "a" * 129 + "==web",
        "node.labels.tier==" + "w" * 129,
        " node.role==manager",
        None,
        42,
        ["node.role==manager"],
        {"node.role": "manager"},
    ],
)
def test_anything_else_is_refused_naming_the_value_and_the_form(value):
    with pytest.raises(ValidationError) as exc:
        placement_constraint(value)
    message = exc.value.messages[0]
    assert "node.labels" in message or "node.role is manager or worker" in message


def _run(constraints: str) -> str:
    return f"version: 1\nrun:\n  port: 8000\n  constraints: {constraints}\n"


@pytest.mark.parametrize(
    ("constraints", "where"),
    [
        ('["node.labels.tier=web"]', "line 4: run.constraints[0]: 'node.labels.tier=web' is not"),
        ('["node.role==manager", "node.role==boss"]', "run.constraints[1]: 'node.role==boss'"),
        ('"node.role==manager"', "line 4: run.constraints: must be a list"),
        ("{a: b}", "run.constraints: must be a list"),
        ("[[node.role==manager]]", "run.constraints[0]: a list is not a placement constraint"),
        ("[1]", "run.constraints[0]: 1 is not a placement constraint"),
        ('["node.role==manager", "node.role == manager"]', "lists a constraint twice"),
        (
            "[" + ", ".join(f'"node.labels.l{i}==x"' for i in range(MAX_CONSTRAINTS + 1)) + "]",
            f"lists more than {MAX_CONSTRAINTS} constraints",
        ),
    ],
)
def test_a_bad_manifest_constraint_names_the_file_line_and_field(constraints, where):
    with pytest.raises(ManifestError) as exc:
        parse(_run(constraints))
    assert str(exc.value).startswith(".paas/app.yaml")
    assert where in str(exc.value)


def test_good_manifest_constraints_are_normalized_and_none_means_none():
    m = parse(_run('["node.labels.tier == web", "node.role!=manager"]'))
    assert m.constraints == ["node.labels.tier==web", "node.role!=manager"]
    assert parse(_run("[]")).constraints == []
    assert parse(_run("null")).constraints == []
    assert parse("version: 1\n").constraints == []


@pytest.mark.django_db
def test_the_service_carries_the_release_constraints_and_still_spreads_by_node():
    app = AppFactory(name="shop")
    deploy = DeployFactory(app=app)
    spec = ReleaseSpec(
        image="127.0.0.1:5000/shop@sha256:" + "a" * 64, constraints=["node.role==manager"]
    )
    svc = swarm_spec.service_spec(app=app, deploy_id=deploy.pk, spec=spec, secret_refs=[])
    assert svc.constraints == ["node.role==manager"]
    assert svc.spread == ["node.id"]
    # A release recorded before constraints existed has none.
    old = ReleaseSpec.from_json({"image": spec.image})
    assert (
        swarm_spec.service_spec(app=app, deploy_id=deploy.pk, spec=old, secret_refs=[]).constraints
        == []
    )
