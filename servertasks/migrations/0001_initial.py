"""Server tasks, their activity tree and their log chunks move here from deployments: in the state only.
Their tables keep their names (deployments_servertask, …) and their rows; deployments' 0007 lets go of them."""

import django.db.models.deletion
import django.utils.timezone
import portal.models
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('deployments', '0006_lifecycles_groups_channels'),
        ('infrastructure', '0003_liveness_health_check_started'),
        ('portal', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='ServerTask',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.CharField(help_text="Octopus's task kind: Health, Deploy, AdHocScript, …", max_length=50)),
                    ('description', models.CharField(max_length=500)),
                    ('state', models.CharField(choices=[('Queued', 'Queued'), ('Executing', 'Executing'), ('Success', 'Success'), ('Failed', 'Failed'), ('Cancelling', 'Canceling'), ('Canceled', 'Canceled'), ('TimedOut', 'Timed Out')], db_index=True, default='Queued', max_length=20)),
                    ('arguments', models.JSONField(blank=True, default=dict)),
                    ('queued', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                    ('started', models.DateTimeField(blank=True, null=True)),
                    ('completed', models.DateTimeField(blank=True, null=True)),
                    ('error_message', models.TextField(blank=True)),
                    ('has_warnings', models.BooleanField(default=False)),
                    ('server_node', models.CharField(blank=True, max_length=200)),
                    ('pending_interruption', models.TextField(blank=True, help_text='a manual intervention waiting for someone')),
                    ('cancel_requested', models.BooleanField(default=False)),
                    ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('environment', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='server_tasks', to='deployments.environment')),
                    ('project', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='server_tasks', to='deployments.project')),
                    ('space', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='server_tasks', to='portal.space')),
                    ('worker_pools', models.ManyToManyField(blank=True, related_name='server_tasks', to='infrastructure.workerpool')),
                ],
                options={
                    'db_table': 'deployments_servertask',
                    'ordering': ['-queued', '-id'],
                },
                bases=(portal.models.OctopusIdMixin, models.Model),
            ),
            migrations.CreateModel(
                name='ActivityNode',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.CharField(max_length=300)),
                    ('status', models.CharField(choices=[('Pending', 'Pending'), ('Running', 'Running'), ('Success', 'Success'), ('Failed', 'Failed'), ('Skipped', 'Skipped'), ('SuccessWithWarning', 'Success With Warning'), ('Canceled', 'Canceled')], default='Pending', max_length=20)),
                    ('started', models.DateTimeField(blank=True, null=True)),
                    ('ended', models.DateTimeField(blank=True, null=True)),
                    ('progress', models.PositiveSmallIntegerField(blank=True, null=True)),
                    ('parent', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='children', to='servertasks.activitynode')),
                    ('task', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='activity_nodes', to='servertasks.servertask')),
                ],
                options={
                    'db_table': 'deployments_activitynode',
                    'ordering': ['task', 'id'],
                },
            ),
            migrations.CreateModel(
                name='TaskLogChunk',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('first_sequence', models.PositiveIntegerField()),
                    ('last_sequence', models.PositiveIntegerField()),
                    ('has_warnings', models.BooleanField(default=False, help_text='a Warning or Error line is in this chunk')),
                    ('compressed', models.BooleanField(default=False)),
                    ('data', models.BinaryField()),
                    ('node', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='log_chunks', to='servertasks.activitynode')),
                    ('task', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='log_chunks', to='servertasks.servertask')),
                ],
                options={
                    'db_table': 'deployments_tasklogchunk',
                    'ordering': ['task', 'first_sequence'],
                },
            ),
            migrations.AddIndex(
                model_name='servertask',
                index=models.Index(fields=['space', 'state'], name='deployments_space_i_f9680f_idx'),
            ),
            migrations.AddIndex(
                model_name='tasklogchunk',
                index=models.Index(fields=['task', 'last_sequence'], name='task_log_chunk_last'),
            ),
            migrations.AddConstraint(
                model_name='tasklogchunk',
                constraint=models.UniqueConstraint(fields=('task', 'first_sequence'), name='task_log_chunk_unique'),
            ),
        ]),
    ]
