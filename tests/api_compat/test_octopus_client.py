"""Octopus's own `@octopusdeploy/api-client` (pinned in package-lock.json) drives a live Reef end to end: a project in
a group with a lifecycle, variables, a process on a worker pool, a release refused in Prod until Dev succeeded,
deployments followed with ServerTaskWaiter, a runbook run, a manual intervention answered, a package pushed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from portal.services.api_keys import create_api_key
from tests.deployments.conftest import agents, make_pool  # noqa: F401 - fixtures
from tests.e2e.conftest import live_reef  # noqa: F401 - fixture
from tests.e2e.test_task_cap import task_runner  # noqa: F401 - fixture

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def octopus_client() -> Path:
    """`npm ci` into tests/api_compat/node_modules when it is missing or older than the lock file."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        pytest.fail("Node.js and npm are missing: apt-get install nodejs npm (.ci/run does)")
    installed = HERE / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < (HERE / "package-lock.json").stat().st_mtime:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=HERE,
            check=True,
            timeout=600,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    return HERE / "drive_reef.js"


def test_octopus_client_creates_releases_deploys_runs_a_runbook_answers_an_intervention_and_pushes_a_package(
    octopus_client, live_reef, task_runner, agents, make_pool, administrator, tmp_path
):  # noqa: F811
    pool = make_pool("Compat workers")
    agents.start("compat-worker", [pool])
    _, key = create_api_key(actor=administrator, user=administrator, purpose="api compat")
    package = tmp_path / "compat-app.1.2.3.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("run.sh", "echo packaged\n")
    result = subprocess.run(
        ["node", str(octopus_client)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=400,
        env={
            **os.environ,
            "REEF_URL": live_reef,
            "REEF_API_KEY": key,
            "REEF_POOL_ID": pool.octopus_id,
            "REEF_PACKAGE": str(package),
        },
    )
    seen = json.loads(result.stdout or "{}")
    assert result.returncode == 0, f"{result.stderr}\nseen so far: {json.dumps(seen)[:3000]}"

    assert seen["lifecyclePhases"] == ["Development", "Production"]
    p = seen["project"]
    assert p["Slug"] == "compat-shop" and p["ProjectGroupId"] == p["groupId"] and p["LifecycleId"] == p["lifecycleId"]
    assert p["VariableSetId"].startswith("variableset-Projects-") and p["DeploymentProcessId"].startswith(
        "deploymentprocess-"
    )
    assert seen["variables"]["after"] == seen["variables"]["before"] + 1
    assert seen["variables"]["sensitiveValues"] == [None]  # write-only
    assert (
        seen["process"]["after"] == seen["process"]["before"] + 1 and seen["process"]["workerPoolId"] == pool.octopus_id
    )
    assert seen["staleProcess"]["status"] == 409, seen["staleProcess"]
    assert f"Version {seen['process']['before']}" in seen["staleProcess"]["message"]
    assert seen["release"]["ReleaseVersion"] == "1.0.0" and seen["release"]["ReleaseId"].startswith("Releases-")

    refused = seen["promotionRefused"]
    assert refused["status"] == 400 and "phase Development" in json.dumps(refused), refused
    assert seen["dev"]["state"] == "Success" and seen["dev"]["detailsState"] == "Success"
    assert "hello-from-dev in Dev on compat-worker" in seen["dev"]["raw"]
    assert "tok-5ecret-value" not in seen["dev"]["raw"] and "token ********" in seen["dev"]["raw"]
    assert seen["dev"]["activityNames"]
    assert seen["prod"]["state"] == "Success" and "hello-from-prod in Prod" in seen["prod"]["raw"]
    assert seen["releaseByVersion"] == seen["release"]["ReleaseId"]

    assert seen["runbook"]["state"] == "Success" and "flushed in Dev" in seen["runbook"]["raw"]
    assert seen["runbook"]["snapshot"] == "Snapshot A"

    i = seen["interruption"]
    assert (
        i["taken"] is True
        and i["pendingAfter"] is False
        and i["result"] == "Proceed"
        and i["notes"] == "Dashboard is green"
    )
    assert i["state"] == "Success" and "approved and running" in i["raw"]

    assert {"Id": "feeds-builtin", "FeedType": "BuiltIn"} in seen["feeds"]
    assert seen["packages"] == [{"PackageId": "compat-app", "Version": "1.2.3"}]
    assert seen["serverStatus"] is False
