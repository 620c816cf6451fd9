"""An administrator edits deployments in /admin/: every write goes through the catalog services, so it is
validated and audited as the same edit on a page would be, and a refused change is a form error, not a 500."""

import pytest

from deployments.models import Environment, Project, Variable
from deployments.services import catalog
from portal.encryption import decrypt
from portal.models import Event

pytestmark = pytest.mark.django_db

ADMIN = "/admin/deployments/"


def _events(document):
    return list(Event.objects.filter(document_id=document.octopus_id).order_by("id").values_list("category", flat=True))


def test_an_environment_added_changed_and_deleted_in_the_admin_leaves_the_events_a_page_leaves(
    page_client, administrator, space
):
    client = page_client(administrator)
    response = client.post(
        ADMIN + "environment/add/",
        {"space": space.pk, "name": "Staging", "description": "", "use_guided_failure": "on"},
    )
    assert response.status_code == 302
    staging = Environment.objects.get(space=space, name="Staging")
    assert staging.use_guided_failure
    assert _events(staging) == ["Created", "Modified"]  # created, then guided failure turned on
    assert Event.objects.filter(
        document_id=staging.octopus_id, message__contains="Guided failure was turned on"
    ).exists()

    response = client.post(
        ADMIN + f"environment/{staging.pk}/change/",
        {"name": "QA", "description": "Testers' own", "use_guided_failure": "on", "sort_order": staging.sort_order},
    )
    assert response.status_code == 302
    staging.refresh_from_db()
    assert (staging.name, staging.description) == ("QA", "Testers' own")
    renamed = Event.objects.filter(document_id=staging.octopus_id, category="Modified").latest("id")
    assert renamed.changes["name"] == ["Staging", "QA"] and renamed.user == administrator

    response = client.post(ADMIN + f"environment/{staging.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Environment.objects.filter(pk=staging.pk).exists()
    assert _events(staging)[-1] == "Deleted"


def test_a_name_the_service_refuses_is_shown_on_the_admin_form(page_client, administrator, space):
    catalog.create_environment(actor=administrator, space=space, name="Production")
    test = catalog.create_environment(actor=administrator, space=space, name="Test")
    response = page_client(administrator).post(
        ADMIN + f"environment/{test.pk}/change/",
        {"name": "production", "description": "", "sort_order": test.sort_order},
    )
    assert response.status_code == 200
    assert "There is already a environment named production." in response.content.decode()
    test.refresh_from_db()
    assert test.name == "Test"
    assert _events(test) == ["Created"]


def test_deleting_an_environment_in_use_is_refused_with_the_services_reason(page_client, administrator, space):
    production = catalog.create_environment(actor=administrator, space=space, name="Production")
    project = catalog.create_project(actor=administrator, space=space, name="Web")
    catalog.save_variable(
        actor=administrator, project=project, name="Url", type="String", value="https://web", environments=[production]
    )
    client = page_client(administrator)
    response = client.post(ADMIN + f"environment/{production.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert "Production is in use and cannot be deleted" in response.content.decode()
    assert Environment.objects.filter(pk=production.pk).exists()
    assert "Deleted" not in _events(production)


def test_a_variable_added_renamed_and_deleted_in_the_admin_is_audited_and_keeps_a_sensitive_value(
    page_client, administrator, space
):
    project = catalog.create_project(actor=administrator, space=space, name="Web")
    client = page_client(administrator)
    assert (
        client.post(ADMIN + "variable/add/", {"project": project.pk, "name": "Greeting", "type": "String"}).status_code
        == 302
    )
    greeting = Variable.objects.get(project=project, name="Greeting")
    assert Event.objects.filter(
        document_id=greeting.octopus_id, category="Created", message="Variable Greeting of Web was added"
    ).exists()

    secret = catalog.save_variable(
        actor=administrator, project=project, name="Password", type="Sensitive", value="hunter2"
    )
    response = client.post(ADMIN + f"variable/{secret.pk}/change/", {"name": "DbPassword", "type": "Sensitive"})
    assert response.status_code == 302
    secret.refresh_from_db()
    assert (secret.name, decrypt(secret.value)) == ("DbPassword", "hunter2")
    changed = Event.objects.filter(document_id=secret.octopus_id, category="Modified").get()
    assert changed.message == "Variable DbPassword of Web was changed" and "hunter2" not in str(changed.changes)

    response = client.post(ADMIN + f"variable/{greeting.pk}/change/", {"name": "dbpassword", "type": "Sensitive"})
    assert response.status_code == 200
    assert "Web already has a variable DbPassword with this scope" in response.content.decode()

    assert client.post(ADMIN + f"variable/{greeting.pk}/delete/", {"post": "yes"}).status_code == 302
    assert Event.objects.filter(document_id=greeting.octopus_id, category="Deleted").exists()


def test_a_project_added_in_the_admin_is_made_as_the_page_makes_it(page_client, administrator, space):
    response = page_client(administrator).post(
        ADMIN + "project/add/", {"space": space.pk, "name": "Payment Service", "description": ""}
    )
    assert response.status_code == 302
    project = Project.objects.get(space=space, name="Payment Service")
    assert project.slug == "payment-service"
    assert project.channels.filter(is_default=True).exists() and project.lifecycle is not None
    assert _events(project) == ["Created"]


@pytest.mark.parametrize("url", ["release/add/", "deployment/add/", "runbookrun/add/", "package/add/"])
def test_what_only_deploying_or_pushing_writes_cannot_be_added_in_the_admin(page_client, administrator, url):
    assert page_client(administrator).get(ADMIN + url).status_code == 403


@pytest.mark.parametrize(
    "model",
    [
        "environment",
        "deploymenttarget",
        "project",
        "runbook",
        "step",
        "variable",
        "lifecycle",
        "projectgroup",
        "channel",
    ],
)
def test_every_add_page_of_the_admin_renders(page_client, administrator, model):
    client = page_client(administrator)
    assert client.get(f"{ADMIN}{model}/add/").status_code == 200
    assert client.get(f"{ADMIN}{model}/").status_code == 200


def test_a_step_changed_in_the_admin_raises_the_process_version_as_the_editor_does(page_client, administrator, space):
    from infrastructure.models import WorkerPool

    project = catalog.create_project(actor=administrator, space=space, name="Web")
    pool = WorkerPool.objects.get(space=space, is_default=True)
    step = catalog.save_step(
        actor=administrator, project=project, name="Migrate", worker_pool=pool, script_body="echo 1"
    )
    version = Project.objects.get(pk=project.pk).process_version
    client = page_client(administrator)
    page = client.get(f"{ADMIN}step/{step.pk}/change/")
    assert page.status_code == 200
    form = {name: value for name, value in page.context["adminform"].form.initial.items() if value is not None}
    form.update(name="Migrate database", worker_pool=pool.pk, target_roles="[]", packages="[]", responsible_teams="[]")
    response = client.post(f"{ADMIN}step/{step.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Project.objects.get(pk=project.pk).process_version == version + 1
    assert Event.objects.filter(
        document_id=step.octopus_id, message="Step Migrate database of the deployment process of Web was changed"
    ).exists()

    form.update(name="Migrate database", script_body="  ")
    response = client.post(f"{ADMIN}step/{step.pk}/change/", form)
    assert response.status_code == 200
    assert "Write the script this step runs." in response.content.decode()


def test_turning_the_builtin_worker_off_in_the_admin_is_audited(page_client, administrator):
    from deployments.models import ServerConfiguration

    configuration = ServerConfiguration.current()
    enabled = configuration.is_builtin_worker_enabled
    response = page_client(administrator).post(
        f"{ADMIN}serverconfiguration/{configuration.pk}/change/", {"is_builtin_worker_enabled": "" if enabled else "on"}
    )
    assert response.status_code == 302
    assert ServerConfiguration.current().is_builtin_worker_enabled is not enabled
    assert Event.objects.filter(
        document_type="ServerConfiguration", message=f"The built-in worker was {'disabled' if enabled else 'enabled'}"
    ).exists()


def test_a_task_is_cancelled_in_the_admin_through_the_task_service_and_never_deleted(page_client, administrator, space):
    from servertasks.models import ServerTask

    task = ServerTask.objects.create(space=space, name="AdHocScript", description="Run a script")
    client = page_client(administrator)
    response = client.post("/admin/servertasks/servertask/", {"action": "cancel", "_selected_action": [task.pk]})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.state == "Canceled" and task.completed is not None
    assert client.post(f"/admin/servertasks/servertask/{task.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ServerTask.objects.filter(pk=task.pk).exists()
