from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('clusters', '0008_step_title_ids'),
    ]

    operations = [
        migrations.AddField(
            model_name='step',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='step',
            name='reclaims',
            field=models.PositiveIntegerField(default=0),
        ),
    ]
