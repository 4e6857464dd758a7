from django.db import migrations, models


class Migration(migrations.Migration):
    """Step.wait_repeats: how many waits in a row gave the same reason, so the engine looks
    less often at a step that keeps saying the same thing (clusters/engine/polling.py). A
    step waiting when this is applied starts at 0: its next looks are at the asked interval."""

    dependencies = [
        ("clusters", "0033_bought_hosts_ssh_and_key_download"),
    ]

    operations = [
        migrations.AddField(
            model_name="step",
            name="wait_repeats",
            field=models.PositiveIntegerField(default=0, db_default=0),
        ),
    ]
