# A delivery id is unique per *deploy*, no longer per row: GitHub's "Redeliver" of an ignored or
# refused delivery is judged again and listed as a row of its own, while a conditional unique
# index (outcome = accepted) keeps concurrent redeliveries of an accepted one from queueing a
# second deploy. The delivery id keeps a plain index for the lookups by id.
#
# WorkflowPass: the successful workflow runs per app and commit that the app's `workflows`
# setting waits for.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def one_row_per_delivery_id(apps, schema_editor):
    # Backwards only: the unique column of 0001 holds each id once. The accepted attempt (else
    # the first) keeps it; the other attempts of that delivery keep their row, without the id.
    WebhookDelivery = apps.get_model("webhooks", "WebhookDelivery")
    rows = WebhookDelivery.objects.using(schema_editor.connection.alias)
    seen = set()
    # "accepted" sorts before "ignored" and "refused" (duplicates carry no id).
    for row in rows.exclude(delivery_id=None).order_by("delivery_id", "outcome", "id"):
        if row.delivery_id in seen:
            rows.filter(pk=row.pk).update(delivery_id=None)
        seen.add(row.delivery_id)


class Migration(migrations.Migration):
    dependencies = [
        ("apps", "0002_app_workflows"),
        ("webhooks", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="webhookdelivery",
            name="delivery_id",
            field=models.CharField(blank=True, db_index=True, max_length=100, null=True),
        ),
        migrations.RunPython(migrations.RunPython.noop, one_row_per_delivery_id, elidable=False),
        migrations.AddConstraint(
            model_name="webhookdelivery",
            constraint=models.UniqueConstraint(
                condition=models.Q(("outcome", "accepted")),
                fields=("delivery_id",),
                name="uniq_accepted_delivery",
            ),
        ),
        migrations.CreateModel(
            name="WorkflowPass",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("commit", models.CharField(max_length=40)),
                ("workflow", models.CharField(max_length=100)),
                ("received", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "app",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="workflow_passes",
                        to="apps.app",
                    ),
                ),
            ],
            options={
                "ordering": ["-received", "-id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("app", "commit", "workflow"), name="uniq_workflow_pass"
                    )
                ],
            },
        ),
    ]
