"""What the task shows while a script runs: update_progress moves its node's progress in /details (and the
page, see tests/e2e/test_progress_in_the_browser.py); durations read as Octopus words them."""

import pytest
from django.urls import reverse

from deployments.services import deploy
from servertasks.models import duration_in_words
from tests.agent.harness import wait_until
from tests.deployments.conftest import add_step, run_in_thread

pytestmark = pytest.mark.django_db(transaction=True)


def nodes(details):
    found = []

    def walk(node):
        found.append(node)
        for child in node["Children"]:
            walk(child)

    for root in details["ActivityLogs"]:
        walk(root)
    return found


def test_progress_moves_live_in_details(administrator, project, production, api_client, shared_folder, page_client):
    marker = shared_folder / "go"
    add_step(
        project,
        "Copy",
        f'update_progress 60 "Copying files"\nwhile [ ! -f {marker} ]; do sleep 0.05; done\n'
        'update_progress 100 "Copied"',
    )
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    thread = run_in_thread(task.pk)
    client = api_client(administrator)

    def running_at_60():
        details = client.get(f"/api/tasks/{task.octopus_id}/details").json()
        found = [n for n in nodes(details) if n["ProgressPercentage"] == 60 and n["Status"] == "Running"]
        return found if len(found) == 2 else None

    try:
        step, worker = wait_until(running_at_60, timeout=30)  # the step, and the worker running it
        assert step["Name"] == "Step 1: Copy" and [e["MessageText"] for e in worker["LogElements"]] == [
            "Copying files (60%)"
        ]
        page = page_client(administrator).get(
            reverse("task", args=[task.space.octopus_id, task.pk]), HTTP_HX_REQUEST="true"
        )
        assert '<span class="step-progress text-muted me-2">60%</span>' in page.content.decode()
    finally:
        marker.touch()
        thread.join(30)
    task.refresh_from_db()
    assert task.state == "Success"
    details = client.get(f"/api/tasks/{task.octopus_id}/details").json()
    assert any(
        n["ProgressPercentage"] == 100 and "Copied (100%)" in [e["MessageText"] for e in n["LogElements"]]
        for n in nodes(details)
    )
    body = client.get(f"/api/tasks/{task.octopus_id}").json()
    assert body["Duration"].endswith(("second", "seconds")) and body["HasPendingInterruptions"] is False


@pytest.mark.parametrize(
    "seconds, words",
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (12.7, "12 seconds"),
        (60, "1 minute"),
        (180, "3 minutes"),
        (3599, "59 minutes"),
        (7200, "2 hours"),
        (86400 * 3, "3 days"),
    ],
)
def test_durations_are_worded_as_octopus_words_them(seconds, words):
    assert duration_in_words(seconds) == words
