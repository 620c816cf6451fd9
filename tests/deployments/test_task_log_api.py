"""/api/tasks/{id}/raw and /details on a long log: the raw log whole, masked and in order; details paged
with after/take or cut with tail; bad numbers are 400s naming the parameter."""

import pytest

from servertasks.models import ServerTask
from servertasks.services.tasklog import TaskLog
from servertasks.services.tasks import finish_server_task

pytestmark = pytest.mark.django_db

LINES = 12_000


@pytest.fixture
def long_task(space):
    task = ServerTask.objects.create(space=space, name="AdHocScript", description="Chatty", state="Executing")
    log = TaskLog(task, sensitive_values=["s3cret"])
    step = log.node("Step 1: Chatter")
    log.write("starting")
    for n in range(LINES):
        log.write(f"line {n} with s3cret", node=step)
    log.flush()
    return finish_server_task(task=task, state="Success")


def test_the_raw_log_downloads_whole_masked_and_in_order(api_client, administrator, long_task, space):
    response = api_client(administrator).get(f"/api/{space.octopus_id}/tasks/{long_task.octopus_id}/raw")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{long_task.octopus_id}.log.txt"'
    text = b"".join(response.streaming_content).decode()
    rows = text.splitlines()
    assert len(rows) == LINES + 1 and rows[0].endswith("Info      starting")
    assert [row.split("  Info      ")[1] for row in rows[1:]] == [f"line {n} with ********" for n in range(LINES)]
    assert "s3cret" not in text


def test_the_raw_log_is_not_found_for_an_outsider(api_client, outsider, long_task):
    assert api_client(outsider).get(f"/api/tasks/{long_task.octopus_id}/raw").status_code == 404


def test_details_page_through_a_long_log_with_after_and_take(api_client, administrator, long_task):
    client = api_client(administrator)
    seen, after = [], -1
    while True:
        details = client.get(f"/api/tasks/{long_task.octopus_id}/details?after={after}&take=5000").json()
        page = [e["Sequence"] for root in details["ActivityLogs"] for e in walk(root)]
        if not page:
            break
        assert len(page) <= 5000
        seen.extend(sorted(page))
        after = seen[-1]
    assert seen == list(range(LINES + 1))
    assert details["PhysicalLogSize"] == LINES + 1 and details["Task"]["State"] == "Success"


def test_details_tail_gives_the_last_lines_of_each_node(api_client, administrator, long_task):
    details = api_client(administrator).get(f"/api/tasks/{long_task.octopus_id}/details?tail=3").json()
    task_lines, step_root = details["ActivityLogs"]
    assert [e["MessageText"] for e in task_lines["LogElements"]] == ["starting"]
    assert [e["MessageText"] for e in step_root["LogElements"]] == [
        f"line {n} with ********" for n in range(LINES - 3, LINES)
    ]


@pytest.mark.parametrize(
    "query, field",
    [
        ("after=x", "after"),
        ("take=0", "take"),
        ("tail=-1", "tail"),
        ("after=99999999999999999999999", "after"),
        ("take=1.5", "take"),
    ],
)
def test_bad_numbers_are_refused_naming_the_parameter(api_client, administrator, long_task, query, field):
    response = api_client(administrator).get(f"/api/tasks/{long_task.octopus_id}/details?{query}")
    assert response.status_code == 400 and list(response.json()["Details"]) == [field], response.json()


def walk(node):
    yield from node["LogElements"]
    for child in node["Children"]:
        yield from walk(child)
