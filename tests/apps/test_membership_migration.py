"""apps 0003: the members of an app become its deployers (they could deploy and set secrets
before; settings and access are now the admin's); the owner needs no row (it is the admin)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(targets):
    return MigrationExecutor(connection).migrate(targets).apps


@pytest.fixture
def at_latest_afterwards():
    try:
        yield
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_members_become_deployers_and_the_owner_stays_admin(at_latest_afterwards):
    old = _migrate([("apps", "0002_app_workflows")])
    User = old.get_model("auth", "User")
    owner, bob, carl = (User.objects.create(username=n) for n in ("alice", "bob", "carl"))
    App = old.get_model("apps", "App")
    shop = App.objects.create(name="shop", repo_url="x", webhook_secret_token="t", owner=owner)
    blog = App.objects.create(name="blog", repo_url="x", webhook_secret_token="t")
    shop.members.add(bob, owner)  # the owner listed as a member too: no row for it
    blog.members.add(bob, carl)

    new = _migrate([("apps", "0003_memberships")])
    rows = new.get_model("apps", "Membership").objects.values_list(
        "app__name", "user__username", "role"
    )
    assert sorted(rows) == [
        ("blog", "bob", "deployer"),
        ("blog", "carl", "deployer"),
        ("shop", "bob", "deployer"),
    ]
    assert new.get_model("apps", "App").objects.get(name="shop").owner_id == owner.pk

    back = _migrate([("apps", "0002_app_workflows")])  # reversible
    members = back.get_model("apps", "App").objects.get(name="blog").members
    assert sorted(members.values_list("username", flat=True)) == ["bob", "carl"]
