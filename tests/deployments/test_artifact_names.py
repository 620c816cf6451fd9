"""An artifact's name is a single safe file name: a path, a separator or a control character is refused with a
warning line in the task (the rest of the step goes on), and a download always carries a safe file name."""

import pytest

from deployments.models import Artifact
from deployments.services.artifacts import artifact_name_problem
from tests.deployments.conftest import add_step, deploy_and_run, log_text

SCRIPT = """echo "all good" > report.txt
new_octopusartifact "$PWD/report.txt" report.txt
new_octopusartifact "$PWD/report.txt" ../../etc/passwd
new_octopusartifact "$PWD/report.txt" $'forged\\n2026-01-01 00:00:00  Info      Deployed.txt'
new_octopusartifact "$PWD/report.txt" 'logs\\today.txt'
echo done"""


@pytest.mark.django_db(transaction=True)
def test_unsafe_artifact_names_are_refused_with_a_reason_and_the_safe_one_is_kept(administrator, project, production):
    add_step(project, "Report", SCRIPT)
    task = deploy_and_run(administrator, project, production)
    text = log_text(task)
    assert [a.name for a in Artifact.objects.filter(task=task)] == ["report.txt"]
    assert "The artifact '../../etc/passwd' was not collected: it holds a path separator" in text
    assert (
        "The artifact 'forged\\n2026-01-01 00:00:00  Info      Deployed.txt' "
        "was not collected: it holds control characters"
    ) in text
    assert "The artifact 'logs\\\\today.txt' was not collected: it holds a path separator" in text
    assert not any(line.startswith("2026-01-01") for line in text.splitlines())  # no forged log line
    assert "done" in text and task.state == "Success"


@pytest.mark.parametrize(
    "name, problem",
    [
        ("report.txt", None),
        ("Ünïcode report (2).txt", None),
        ("", "it is empty"),
        ("a" * 201, "it is longer than 200 characters"),
        ("a/b", "it holds a path separator: give a file name, not a path"),
        ("..", "it holds '..'"),
        ("x\x00y", "it holds control characters"),
        ("evil\u202etxt.exe", "it holds control characters"),
        (" padded ", "it starts or ends with white space"),
        (None, "it is empty"),
    ],
)
def test_artifact_name_rules(name, problem):
    assert artifact_name_problem(name) == problem


@pytest.mark.django_db
def test_a_stored_name_with_a_newline_downloads_under_a_safe_name(
    page_client, administrator, project, production, space
):
    from deployments.services import deploy

    add_step(project, "Report", "echo hi")
    release = deploy.create_release(actor=administrator, project=project)
    task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
    artifact = Artifact.objects.create(task=task, name='bad\r\nSet-Cookie: x="1".txt', size=2, content=b"hi")
    response = page_client(administrator).get(f"/{space.octopus_id}/tasks/{task.pk}/artifacts/{artifact.pk}/")
    assert response.status_code == 200 and response.content == b"hi"
    assert response["Content-Disposition"] == 'attachment; filename="bad__Set-Cookie: x=_1_.txt"'
