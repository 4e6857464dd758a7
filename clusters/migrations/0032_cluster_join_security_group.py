from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("clusters", "0031_network_order"),
    ]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="join_security_group",
            field=models.BooleanField(
                default=False, verbose_name="add the hosts to the cluster's security group"),
        ),
    ]
