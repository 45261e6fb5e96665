"""Statements the ORM makes too slowly for the webhook intake, built from the models' metadata.

At 200 deliveries a second every statement of a batch counts: `bulk_create` of two rows cost
0.5-0.7 ms of the GIL here, most of it in Django's SQL compiler, the INSERT itself under
0.1 ms (BENCHMARKS.md, webhook intake). Table and column names come from the model's
metadata and are quoted by the database's own rules; every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from django.db import connection
from django.db.models import Model
from django.db.models.fields import AutoFieldMixin

M = TypeVar("M", bound=Model)


def insert_many(objs: Sequence[M]) -> list[M]:
    """Insert new rows of one model, as `Model.objects.bulk_create(objs)` does on SQLite 3.35+
    and PostgreSQL (one INSERT per batch, no save() or signals, the new primary keys set on
    `objs`), without the SQL compiler. For models whose primary key the database assigns;
    field values are prepared as the ORM prepares them (`pre_save`, `get_db_prep_save`), so
    defaults, auto_now_add and JSON fields are stored alike."""
    if not objs:
        return []
    model = type(objs[0])
    if any(type(obj) is not model for obj in objs):
        raise TypeError("insert_many inserts rows of one model at a time")
    meta = model._meta
    pk = meta.pk
    if not isinstance(pk, AutoFieldMixin):
        raise TypeError(f"{meta.label}'s primary key is not assigned by the database")
    if any(obj.pk is not None or not obj._state.adding for obj in objs):
        raise ValueError("insert_many inserts new rows only")
    if not connection.features.can_return_rows_from_bulk_insert:
        raise RuntimeError("this database cannot return the ids of a multi-row INSERT")
    fields = [f for f in meta.concrete_fields if f is not pk]
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    per_statement = max(1, connection.ops.bulk_batch_size(fields, objs))
    for start in range(0, len(objs), per_statement):
        chunk = objs[start : start + per_statement]
        values = [f.pre_save(obj, True) for obj in chunk for f in fields]
        if any(hasattr(v, "resolve_expression") for v in values):
            raise TypeError("insert_many takes plain values, not expressions or db_default")
        params = [
            f.get_db_prep_save(v, connection)
            for v, f in zip(values, fields * len(chunk), strict=True)
        ]
        sql = (
            f"INSERT INTO {qn(meta.db_table)} ({columns}) "  # noqa: S608 (names from metadata)
            f"VALUES {', '.join([row] * len(chunk))} RETURNING {qn(pk.column)}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            # The database numbers the rows of one INSERT in their order; RETURNING's own
            # order is not promised (SQLite says so), so the ids are matched by size.
            ids = sorted(row[0] for row in cursor.fetchall())
        if len(ids) != len(chunk):
            raise RuntimeError(f"{len(chunk)} rows inserted, {len(ids)} ids returned")
        for obj, new_id in zip(chunk, ids, strict=True):
            obj.pk = new_id
            obj._state.adding = False
            obj._state.db = connection.alias
    return list(objs)
