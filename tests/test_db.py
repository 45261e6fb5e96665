"""koyra/db.py: insert_many stores what bulk_create stores, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models.expressions import Value
from django.forms.models import model_to_dict

from deployments.models import Deploy
from deployments.webhooks.models import WebhookDelivery
from koyra import db
from tests.factories import AppFactory, DeployFactory, UserFactory

pytestmark = pytest.mark.django_db


def _stored(model, pks):
    """Every column of the rows, as read back from the database."""
    rows = {obj.pk: obj for obj in model.objects.filter(pk__in=pks)}
    return [
        {f.attname: getattr(rows[pk], f.attname) for f in model._meta.concrete_fields} for pk in pks
    ]


def _without(rows, *names):
    return [{k: v for k, v in row.items() if k not in names} for row in rows]


def test_rows_are_stored_as_bulk_create_stores_them():
    app, other = AppFactory(), AppFactory()
    source = DeployFactory(app=app)

    def make():
        return [
            Deploy(app=app, commit="a" * 40, trigger="push"),
            Deploy(app=other, commit="", trigger="workflow_run", spec={"replicas": 2, "x": [1]}),
            Deploy(app=app, commit="b" * 40, trigger="rollback", source=source, error="é ' \" ;"),
        ]

    ours = db.insert_many(make())
    theirs = Deploy.objects.bulk_create(make())
    assert all(d.pk is not None and not d._state.adding for d in ours)
    assert [d.pk for d in ours] == sorted(d.pk for d in ours)
    stored = _stored(Deploy, [d.pk for d in ours])
    # Each column as bulk_create stores it (ids and creation times aside), JSON included.
    assert _without(stored, "id", "created") == _without(
        _stored(Deploy, [d.pk for d in theirs]), "id", "created"
    )
    assert stored[1]["spec"] == {"replicas": 2, "x": [1]}
    assert all(row["created"] is not None for row in stored)
    # The objects are the rows: defaults and auto_now_add set on them as stored.
    assert [model_to_dict(d) for d in ours] == [
        model_to_dict(Deploy.objects.get(pk=d.pk)) for d in ours
    ]
    assert [d.created for d in ours] == [row["created"] for row in stored]


def test_each_object_gets_the_id_of_its_own_row():
    app = AppFactory()
    made = db.insert_many([Deploy(app=app, commit=f"{i:040x}", trigger="push") for i in range(250)])
    assert len({d.pk for d in made}) == 250
    assert all(Deploy.objects.get(pk=d.pk).commit == d.commit for d in made)


def test_more_rows_than_one_statement_may_carry(monkeypatch):
    app = AppFactory()
    monkeypatch.setattr(connection.ops, "bulk_batch_size", lambda fields, objs: 7)
    made = db.insert_many([Deploy(app=app, commit=f"{i:040x}", trigger="push") for i in range(23)])
    assert [Deploy.objects.get(pk=d.pk).commit for d in made] == [d.commit for d in made]
    assert Deploy.objects.count() == 23


def test_foreign_keys_and_nulls_as_the_orm_stores_them():
    app = AppFactory()
    deploy = DeployFactory(app=app)
    made = db.insert_many(
        [
            WebhookDelivery(app=app, deploy=deploy, delivery_id="g-1", event="push"),
            WebhookDelivery(app=app, deploy=None, delivery_id=None, event="ping", reason="r"),
        ]
    )
    first, second = (WebhookDelivery.objects.get(pk=d.pk) for d in made)
    assert (first.deploy_id, first.delivery_id) == (deploy.pk, "g-1")
    assert (second.deploy_id, second.delivery_id, second.reason) == (None, None, "r")


def test_nothing_to_insert():
    assert db.insert_many([]) == []


@pytest.mark.parametrize(
    ("objs", "error"),
    [
        (lambda app: [Deploy(app=app, trigger="push"), WebhookDelivery(app=app)], TypeError),
        (lambda app: [DeployFactory(app=app)], ValueError),  # saved already
        (lambda app: [Deploy(pk=10**9, app=app, trigger="push")], ValueError),
        (lambda app: [Deploy(app=app, trigger="push", error=Value("x"))], TypeError),
        (lambda app: [UserFactory.build()], None),  # an auto primary key too: inserted
    ],
)
def test_what_it_refuses(objs, error):
    made = objs(AppFactory())
    before = Deploy.objects.count()
    if error is None:
        assert db.insert_many(made)[0].pk is not None
        return
    with pytest.raises(error):
        db.insert_many(made)
    assert Deploy.objects.count() == before  # nothing half inserted
