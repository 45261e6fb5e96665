# WebhookDelivery now belongs to the `webhooks` app (deployments/webhooks/), on the same
# table. This removes it from the `deployments` state only: the table and its rows stay.
# It depends on webhooks 0001, which adds the model there first (see that migration).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('deployments', '0002_prunerun'),
        ('webhooks', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(
                    name='WebhookDelivery',
                ),
            ],
            database_operations=[],
        ),
    ]
