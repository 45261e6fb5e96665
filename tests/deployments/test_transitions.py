"""One function moves a deploy's status and relays it; nothing else does either."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from deployments import logstream
from deployments.models import Deploy
from deployments.transitions import transition
from tests.factories import DeployFactory

ROOT = Path(__file__).resolve().parents[2]
Status = Deploy.Status


@pytest.fixture
def relayed(monkeypatch):
    sent: list[tuple[int, dict]] = []
    monkeypatch.setattr(
        logstream, "_send", lambda deploy_id, message: sent.append((deploy_id, message))
    )
    return sent


@pytest.mark.django_db
def test_a_move_is_stored_and_relayed_once(relayed):
    d = DeployFactory(status=Status.BUILDING)
    assert transition(d, Status.FAILED, reason="boom")
    d.refresh_from_db()
    assert (d.status, d.error) == (Status.FAILED, "boom")
    assert [m["status"] for _, m in relayed] == ["failed"]


@pytest.mark.django_db
def test_a_refused_move_changes_nothing_and_relays_nothing(relayed):
    d = DeployFactory(status=Status.CANCELLED)
    for to, kw in (
        (Status.LIVE, {}),
        (Status.FAILED, {"reason": "late"}),
        (Status.RETIRED, {}),
        (Status.SUPERSEDED, {"by": DeployFactory(app=d.app)}),
        (Status.BUILDING, {"stage": "clone"}),
    ):
        assert not transition(d, to, **kw)
    d.refresh_from_db()
    assert d.status == Status.CANCELLED and relayed == []


@pytest.mark.django_db
def test_a_stage_start_moves_and_relays_the_stage(relayed):
    d = DeployFactory()
    assert transition(d, Status.PUSHING, stage="push")
    assert relayed[-1][1]["status"] == "pushing" and "push" in relayed[-1][1]["stages"]


@pytest.mark.django_db
def test_the_line_is_stored_before_the_status_is_relayed_and_only_when_it_moved(relayed):
    d = DeployFactory(status=Status.DEPLOYING)
    log = logstream.DeployLog(d)
    assert transition(d, Status.LIVE, log=log, line="live: now")
    assert [m.get("type") for _, m in relayed] == ["log.lines", "deploy.status"]
    assert not transition(d, Status.LIVE, log=log, line="live: again")
    assert d.log_text == "live: now"


@pytest.mark.django_db
def test_a_status_with_no_rule_is_refused_loudly():
    d = DeployFactory()
    with pytest.raises(ValueError):
        transition(d, Status.BUILDING)
    with pytest.raises(ValueError):
        transition(d, Status.SUPERSEDED)


def _calls(names: set[str]) -> list[str]:
    """`module:line name` of every call to one of `names` in the project's own code."""
    found = []
    for pkg in ("koyra", "apps", "deployments", "secrets_vault"):
        for path in (ROOT / pkg).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in names
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.attr}")
    return found


def test_only_the_transition_function_changes_a_status_or_relays_one():
    movers = {
        "mark_live",
        "mark_failed",
        "mark_superseded",
        "mark_cancelled",
        "mark_retired",
        "start_stage",
        "status_changed",
    }
    outside = [c for c in _calls(movers) if not c.startswith("deployments/transitions.py")]
    assert outside == []


def test_no_code_writes_a_status_with_a_bare_update():
    """`.update(status=...)` would bypass the guard and the relay."""
    offenders = []
    for pkg in ("koyra", "apps", "deployments", "secrets_vault"):
        for path in (ROOT / pkg).rglob("*.py"):
            if "migrations" in path.parts or path.name == "models.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "update"
                    and any(k.arg == "status" for k in node.keywords)
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
