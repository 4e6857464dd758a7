"""The ClientToken generation of each ledger row (clusters/adapters/purchase.py).

Existing rows start at generation 0, whose ClientToken is the one they already carry, so a row
whose create was in flight before the upgrade is re-sent with the same token.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('clusters', '0013_agent_token_ca_hash_host_key_audit'),
    ]

    operations = [
        migrations.AddField(
            model_name='cloudresource',
            name='token_generation',
            field=models.PositiveIntegerField(default=0, verbose_name='ClientToken generation'),
        ),
    ]
