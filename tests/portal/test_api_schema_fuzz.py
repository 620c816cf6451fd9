"""The OpenAPI schema tells the truth: schemathesis, driven from the schema daphne serves, sends generated requests
to every operation in it (so every endpoint added later too), with a deterministic seed and a bounded number of
cases, fuzzing and then the stateful phase, and fails on any 5xx, an undeclared status code, a wrong content type or a
body that does not match the documented schema. Path ids are pinned to rows that exist, so operations answer with
data and not only 404. Revoking API keys is left out: it would revoke the key the run signs with."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import urllib.request
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.models import DeploymentTarget, Environment, Interruption, Project, Step
from deployments.services import catalog, deploy, lifecycles, processes
from deployments.services.orchestrator import run_server_task
from infrastructure.models import MachinePolicy, WorkerPool
from infrastructure.services import accounts
from portal.models import Event, ScopedUserRole, Team, User, UserRole
from portal.services import api_keys, users
from portal.services.spaces import create_space, ensure_default_space
from tests.e2e.conftest import ROOT, free_port, server_env, wait_for_http

pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
    "response_headers_conformance"
)
EXCLUDED = r"/apikeys/\{id\}$"  # DELETE revokes the run's own key
CASES_PER_OPERATION = 3


def existing_ids(administrator: User) -> dict[str, str]:
    """One real row of every resource the API finds by id, keyed by the path segment before `{id}`."""
    space = ensure_default_space()
    environment = Environment.objects.create(space=space, name="Production", sort_order=1)
    project = Project.objects.create(space=space, name="Hello", slug="hello")
    Step.objects.create(
        project=project, name="Say hello", script_body="echo hello", sort_order=0, location=Step.Location.SERVER
    )
    release = deploy.create_release(actor=administrator, project=project)
    deployment = deploy.deploy_release(actor=administrator, release=release, environment=environment)
    account = accounts.save_account(
        actor=administrator,
        space=space,
        name="Deployer",
        account_type="UsernamePassword",
        username="deployer",
        password="s3cret-Value",
    )
    team = Team.objects.exclude(space__isnull=True).first() or Team.objects.first()
    spare = create_space(actor=administrator, name="Fuzzed")  # PUT and DELETE may change it; the default space stays
    # The write API's resources (issue 13): a runbook with a snapshot and a run, a target, a package, and an
    # interruption a task really waits at (a manual step, run here up to its pause).
    runbook = catalog.create_runbook(actor=administrator, project=project, name="Restart")
    Step.objects.create(
        project=project,
        runbook=runbook,
        name="Restart it",
        script_body="echo restart",
        sort_order=0,
        location=Step.Location.SERVER,
    )
    snapshot = processes.create_runbook_snapshot(actor=administrator, runbook=runbook, publish=True)
    run = deploy.run_runbook(actor=administrator, runbook=runbook, environment=environment)
    target = catalog.create_deployment_target(
        actor=administrator,
        space=space,
        name="web-01",
        kind=DeploymentTarget.Kind.CLOUD_REGION,
        roles=["web"],
        environments=[environment],
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("run.sh", "echo hi")
    package = catalog.store_package(
        actor=administrator,
        space=space,
        package_id="hello",
        version="1.0.0",
        upload=SimpleUploadedFile("hello.1.0.0.zip", archive.getvalue(), content_type="application/zip"),
    )
    gated = Project.objects.create(space=space, name="Gated", slug="gated")
    Step.objects.create(
        project=gated,
        name="Gate",
        action_type=Step.ActionType.MANUAL,
        location=Step.Location.SERVER,
        instructions="Look at the graphs",
        sort_order=0,
    )
    gate = deploy.deploy_release(
        actor=administrator, release=deploy.create_release(actor=administrator, project=gated), environment=environment
    )
    run_server_task(gate.task.pk)
    interruption = Interruption.objects.get(task=gate.task, is_pending=True)
    return {
        "spaces": spare.octopus_id,
        "users": administrator.octopus_id,
        "teams": team.octopus_id,
        "userroles": UserRole.objects.first().octopus_id,
        "events": Event.objects.first().octopus_id,
        "scopeduserroles": ScopedUserRole.objects.first().octopus_id
        if ScopedUserRole.objects.exists()
        else "ScopedUserRoles-1",
        "tasks": deployment.task.octopus_id,
        "workerpools": WorkerPool.objects.get(space=space, is_default=True).octopus_id,
        "machinepolicies": MachinePolicy.objects.filter(space=space).first().octopus_id,
        "accounts": account.octopus_id,
        "environments": environment.octopus_id,
        "projects": project.octopus_id,
        "releases": release.octopus_id,
        "deployments": deployment.octopus_id,
        "workers": "Workers-1",
        "runbookRuns": run.octopus_id,
        "runbook-runs": run.octopus_id,
        "projectgroups": lifecycles.default_project_group(space).octopus_id,
        "lifecycles": lifecycles.default_lifecycle(space).octopus_id,
        "channels": lifecycles.default_channel(project).octopus_id,
        "variables": f"variableset-{project.octopus_id}",
        "runbooks": runbook.octopus_id,
        "runbookSnapshots": snapshot.octopus_id,
        "runbookProcesses": f"RunbookProcess-{runbook.octopus_id}",
        "path.project_id": project.octopus_id,
        "path.version": release.version,
        "path.rerun_id": deployment.task.octopus_id,
        "interruptions": interruption.octopus_id,
        "feeds": "feeds-builtin",
        "packages": package.octopus_id,
        "machines": target.octopus_id,
    }


def config_file(tmp_path, ids: dict[str, str]) -> str:
    lines = ["[parameters]", '"path.space_id" = "Spaces-1"', '"path.user_id" = "me"']
    lines += [f'"{name}" = "{value}"' for name, value in ids.items() if name.startswith("path.")] + [""]
    for segment, octopus_id in ids.items():
        if segment.startswith("path."):
            continue
        lines += [
            "[[operations]]",
            f'include-path-regex = "/{re.escape(segment).replace(chr(92), chr(92) * 2)}/\\\\{{id\\\\}}"',
            f'parameters = {{ "path.id" = "{octopus_id}" }}',
            "",
        ]
    path = tmp_path / "schemathesis.toml"
    path.write_text("\n".join(lines))
    return str(path)


@pytest.fixture
def live_reef():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"],
        cwd=ROOT,
        env=server_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_every_operation_answers_as_the_schema_says(live_reef, tmp_path):
    administrator, _ = users.ensure_first_administrator(username="administrator", password="a-Long-test-passw0rd")
    ids = existing_ids(administrator)
    _, key = api_keys.create_api_key(actor=administrator, user=administrator, purpose="schemathesis")
    with urllib.request.urlopen(f"{live_reef}/api/schema?format=json") as response:
        assert response.status == 200
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        config_file(tmp_path, ids),
        "run",
        f"{live_reef}/api/schema?format=json",
        "--header",
        f"X-Octopus-ApiKey: {key}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,fuzzing,stateful",
        "--max-examples",
        str(CASES_PER_OPERATION),
        "--seed",
        "20261129",
        "--exclude-path-regex",
        EXCLUDED,
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--no-shrink",
        "--suppress-health-check",
        "all",
        "--output-truncate",
        "true",
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    summary = run.stdout[-20000:]
    print(run.stdout[-2500:])
    assert run.returncode == 0, summary
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested and int(tested.group(1)) > 100, summary  # every operation, not a handful
