from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('infrastructure', '0002_worker_next_health_check'),
    ]

    operations = [
        migrations.AddField(
            model_name='worker',
            name='health_check_started',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='worker',
            name='recheck_attempt',
            field=models.PositiveIntegerField(default=0),
        ),
    ]
