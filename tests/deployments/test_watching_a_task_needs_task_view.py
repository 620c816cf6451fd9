"""Who may open /ws/tasks/<id>/: TaskView in the task's space. Others are closed with a code that says why."""

import pytest

from servertasks.models import ServerTask
from servertasks.services.tasklog import TaskLog
from servertasks.services.tasks import finish_server_task
from tests.conftest import make_person
from tests.deployments.test_live_task_log import open_socket, run

pytestmark = pytest.mark.django_db(transaction=True)


def finished_task(space) -> ServerTask:
    task = ServerTask.objects.create(space=space, name="AdHocScript", description="Says hello", state="Executing")
    log = TaskLog(task)
    log.write("hello")
    log.flush()
    return finish_server_task(task=task, state="Success")


async def first_message(task, user):
    communicator = await open_socket(task, user)
    message = await communicator.receive_output(timeout=10)
    await communicator.disconnect()
    return message


def test_someone_from_another_space_is_told_the_task_does_not_exist(space, other_space, administrator):
    elsewhere = make_person("elsewhere", "Project viewer", other_space)
    assert run(first_message, finished_task(space), elsewhere) == {"type": "websocket.close", "code": 4404}
    assert run(first_message, finished_task(other_space), elsewhere)["type"] == "websocket.send"


def test_someone_who_sees_the_space_without_task_view_is_forbidden(space, administrator):
    manager = make_person("sysmanager", "System manager", None, system=True)
    assert run(first_message, finished_task(space), manager) == {"type": "websocket.close", "code": 4403}


def test_a_project_viewer_watches(space, project_viewer):
    message = run(first_message, finished_task(space), project_viewer)
    assert message["type"] == "websocket.send" and '"tree"' in message["text"]
