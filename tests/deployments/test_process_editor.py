"""The process editor: steps in order, edited, moved and deleted; a runbook's process uses the same editor
and keeps its own steps; the editor words execution locations exactly as Octopus does."""

import pytest

from deployments.models import Step
from deployments.services import catalog

pytestmark = pytest.mark.django_db

SCRIPT = {"action_type": "Octopus.Script", "syntax": "Bash", "condition": "Success", "max_parallelism": 10}


def _names(project, runbook=None):
    return list(Step.objects.filter(project=project, runbook=runbook).values_list("name", flat=True))


def test_the_editor_words_locations_and_pool_choices_as_octopus(page_client, administrator, project):
    html = (
        page_client(administrator).get(f"/{project.space.octopus_id}/projects/{project.pk}/steps/add/").content.decode()
    )
    for words in (
        "Run once on a worker",
        "Run on a worker on behalf of each deployment target",
        "Run on the server",
        "Runs on a worker from a specific worker pool",
        "Runs on a worker from a pool selected via a variable",
        "PowerShell",
        "Start with the previous step",
        "Maximum parallelism",
        "Referenced packages",
    ):
        assert words in html, words
    assert "font-monospace" in html


def test_steps_are_added_edited_moved_and_deleted(page_client, administrator, project, make_pool):
    pool = make_pool("Builders")
    client = page_client(administrator)
    base = f"/{project.space.octopus_id}/projects/{project.pk}/steps/"
    client.post(
        base + "add/",
        {
            **SCRIPT,
            "name": "Build",
            "location": "Worker",
            "pool_source": "direct",
            "worker_pool": pool.pk,
            "script_body": "make",
        },
    )
    client.post(
        base + "add/",
        {
            **SCRIPT,
            "name": "Announce",
            "location": "Server",
            "worker_pool": pool.pk,  # hidden: ignored
            "script_body": "echo done",
            "syntax": "Python",
        },
    )
    client.post(
        base + "add/",
        {
            "name": "Approve",
            "action_type": "Octopus.Manual",
            "location": "Worker",
            "condition": "Success",
            "syntax": "Bash",
            "max_parallelism": 10,
            "instructions": "Check the staging site.",
        },
    )
    assert _names(project) == ["Build", "Announce", "Approve"]
    announce = Step.objects.get(name="Announce")
    assert (announce.location, announce.worker_pool, announce.syntax) == ("Server", None, "Python")
    client.post(base + f"{announce.pk}/move/up/")
    assert _names(project) == ["Announce", "Build", "Approve"]
    build = Step.objects.get(name="Build")
    response = client.post(
        base + f"{build.pk}/",
        {
            **SCRIPT,
            "name": "Build it",
            "location": "OnBehalfOfTargets",
            "pool_source": "direct",
            "worker_pool": pool.pk,
            "target_roles": "web, api",
            "script_body": "make",
            "start_with_previous": "on",
            "max_parallelism": 2,
        },
    )
    assert response.status_code == 302 and response["Location"].endswith(f"/projects/{project.pk}/process/")
    build.refresh_from_db()
    assert (build.name, build.target_roles, build.start_with_previous, build.max_parallelism) == (
        "Build it",
        ["web", "api"],
        True,
        2,
    )
    assert client.post(base + f"{announce.pk}/delete/").status_code == 302
    assert _names(project) == ["Build it", "Approve"]
    page = client.get(f"/{project.space.octopus_id}/projects/{project.pk}/process/").content.decode()
    assert (
        "Run on a worker on behalf of each deployment target (web, api)" in page
        and "Manual intervention required" in page
    )


def test_a_runbook_has_its_own_process_in_the_same_editor(page_client, administrator, project):
    catalog.save_step(actor=administrator, project=project, name="Deploy", location="Server", script_body="echo deploy")
    runbook = catalog.create_runbook(actor=administrator, project=project, name="Restart")
    client = page_client(administrator)
    base = f"/{project.space.octopus_id}/projects/{project.pk}/runbooks/{runbook.pk}/steps/"
    for name in ("Stop", "Start"):
        assert (
            client.post(
                base + "add/", {**SCRIPT, "name": name, "location": "Server", "script_body": f"echo {name}"}
            ).status_code
            == 302
        )
    start = Step.objects.get(name="Start")
    client.post(base + f"{start.pk}/move/up/")
    assert _names(project, runbook) == ["Start", "Stop"] and _names(project) == ["Deploy"]
    page = client.get(f"/{project.space.octopus_id}/projects/{project.pk}/runbooks/{runbook.pk}/").content.decode()
    assert (
        "Runbook process" in page and f"{base}{start.pk}/" in page and "Deploy" not in page.split("Runbook process")[1]
    )
