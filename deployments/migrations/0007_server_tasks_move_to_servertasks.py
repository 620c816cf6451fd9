"""Server tasks, their activity tree and their log chunks now belong to servertasks (its 0001): deployments
lets go of them in the state only, its foreign keys point there, and their content types follow, so
permissions, object permissions (guardian) and admin log entries keep referring to the same rows.
No table or row changes."""

import django.db.models.deletion
from django.db import migrations, models

MOVED = ("servertask", "activitynode", "tasklogchunk")


def move_content_types(apps, schema_editor, *, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MOVED:
        if not ContentType.objects.using(db).filter(app_label=new, model=model).exists():
            ContentType.objects.using(db).filter(app_label=old, model=model).update(app_label=new)


def forwards(apps, schema_editor):
    move_content_types(apps, schema_editor, old="deployments", new="servertasks")


def backwards(apps, schema_editor):
    move_content_types(apps, schema_editor, old="servertasks", new="deployments")


def task(related_name, one_to_one=False):
    field = models.OneToOneField if one_to_one else models.ForeignKey
    return field(on_delete=django.db.models.deletion.CASCADE, related_name=related_name, to='servertasks.servertask')


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('deployments', '0006_lifecycles_groups_channels'),
        ('servertasks', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AlterField(model_name='deployment', name='task', field=task('deployment', one_to_one=True)),
            migrations.AlterField(model_name='runbookrun', name='task', field=task('runbook_run', one_to_one=True)),
            migrations.AlterField(model_name='workerlease', name='task', field=task('leases')),
            migrations.AlterField(model_name='artifact', name='task', field=task('artifacts')),
            migrations.AlterField(model_name='interruption', name='task', field=task('interruptions')),
            migrations.AlterField(model_name='runningscript', name='task', field=task('running_scripts')),
            migrations.AlterField(
                model_name='interruption',
                name='node',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+',
                                        to='servertasks.activitynode'),
            ),
            migrations.DeleteModel(name='TaskLogChunk'),
            migrations.DeleteModel(name='ActivityNode'),
            migrations.DeleteModel(name='ServerTask'),
        ]),
        migrations.RunPython(forwards, backwards),
    ]
