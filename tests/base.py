"""The fixed cast every view test uses: an owner, a collaborator, an outsider, staff."""

from __future__ import annotations

import pytest

from tests.factories import AppFactory, UserFactory


class Cast:
    def __init__(self) -> None:
        self.owner = UserFactory(username="alice")
        self.member = UserFactory(username="bob")
        self.outsider = UserFactory(username="charlie")
        self.staff = UserFactory(username="root", is_staff=True)
        self.app = AppFactory.create(name="shop", owner=self.owner)
        self.app.members.add(self.member)


@pytest.fixture
def cast(db) -> Cast:
    return Cast()
