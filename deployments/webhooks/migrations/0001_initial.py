# WebhookDelivery moves here from `deployments` without touching its table: this migration
# adds it to the `webhooks` state on the existing table, and deployments 0003 (which
# depends on this one) removes it from the `deployments` state. Every row stays where it is.
#
# The order matters: the model is in the `webhooks` state before it leaves the
# `deployments` one, so at no point of either graph is the table without a model, and
# backwards deployments 0003 gives it back before this migration takes it away.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def _move_content_type(apps, schema_editor, old: str, new: str) -> None:
    # Keeps what points at the content type (permissions granted to staff, the admin's
    # history) pointing at the model. When the target already exists (a post_migrate ran
    # in between), it is left alone: Django would have made it the same way.
    ContentType = apps.get_model("contenttypes", "ContentType")
    content_types = ContentType.objects.using(schema_editor.connection.alias)
    if not content_types.filter(app_label=new, model="webhookdelivery").exists():
        content_types.filter(app_label=old, model="webhookdelivery").update(app_label=new)


def content_type_forwards(apps, schema_editor):
    _move_content_type(apps, schema_editor, "deployments", "webhooks")


def content_type_backwards(apps, schema_editor):
    _move_content_type(apps, schema_editor, "webhooks", "deployments")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('apps', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('deployments', '0002_prunerun'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='WebhookDelivery',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('delivery_id', models.CharField(blank=True, max_length=100, null=True, unique=True)),
                        ('event', models.CharField(blank=True, max_length=50)),
                        ('commit', models.CharField(blank=True, max_length=40)),
                        ('outcome', models.CharField(choices=[('accepted', 'accepted'), ('ignored', 'ignored'), ('refused', 'refused'), ('duplicate', 'duplicate')], max_length=20)),
                        ('reason', models.CharField(blank=True, max_length=500)),
                        ('received', models.DateTimeField(default=django.utils.timezone.now)),
                        ('app', models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='apps.app')),
                        ('deploy', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to='deployments.deploy')),
                    ],
                    options={
                        'verbose_name_plural': 'webhook deliveries',
                        'db_table': 'deployments_webhookdelivery',
                        'ordering': ['-received', '-id'],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_forwards, content_type_backwards, elidable=False),
    ]
