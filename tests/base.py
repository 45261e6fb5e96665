"""The fixed cast every view test uses, one per kind of access to the app "shop" (apps.access):
its owner (admin), a deployer, a viewer, an admin by membership, an outsider, staff without
any permission (is_staff gives nothing on apps), and a superuser. The owner and the deployer
may create apps (the permission apps.add_app); no one else but the superuser may."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from apps.models import Membership
from tests.factories import AppFactory, UserFactory


class Cast:
    def __init__(self) -> None:
        self.owner = UserFactory.create(username="alice")
        self.member = UserFactory.create(username="bob")  # deployer
        self.viewer = UserFactory.create(username="vera")
        self.admin = UserFactory.create(username="ada")
        self.outsider = UserFactory.create(username="charlie")
        self.staff = UserFactory.create(username="root", is_staff=True)
        self.superuser = UserFactory(username="sue", is_staff=True, is_superuser=True)
        self.app = AppFactory.create(name="shop", owner=self.owner)
        for user, role in [
            (self.member, "deployer"),
            (self.viewer, "viewer"),
            (self.admin, "admin"),
        ]:
            Membership.objects.create(app=self.app, user=user, role=role)
        add_app = Permission.objects.get(content_type__app_label="apps", codename="add_app")
        for user in (self.owner, self.member):
            user.user_permissions.add(add_app)


@pytest.fixture
def cast(db) -> Cast:
    return Cast()
