"""A health check queued through the API runs as a server task on a real Celery worker, over real SSH."""

import subprocess
import sys
import time

import pytest
from django.conf import settings

from infrastructure.models import Worker, WorkerPool
from infrastructure.services import accounts, workers
from infrastructure.services.workers import Endpoint, WorkerSpec
from infrastructure.transports.ssh import discover_host_key
from servertasks.models import ServerTask
from tests.e2e.conftest import ROOT, server_env
from tests.infrastructure.sshd import start_sshd
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def celery_worker(transactional_db):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-l",
            "warning",
            "--concurrency",
            "1",
            "-n",
            f"test-{time.time_ns()}@%h",
            "-Q",
            settings.REEF_HEALTH_QUEUE,
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=server_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield process
    process.terminate()
    process.wait(timeout=20)


def test_a_requested_health_check_runs_on_celery_and_logs_to_its_task(
    celery_worker, api_client, administrator, space, tmp_path
):
    sshd = start_sshd(tmp_path / "sshd")
    try:
        account = accounts.save_account(
            actor=administrator,
            space=space,
            name="key",
            account_type="SshKeyPair",
            username=sshd.username,
            private_key=sshd.client_private_key,
        )
        worker = workers.register_worker(
            actor=administrator,
            space=space,
            spec=WorkerSpec(
                name="ssh-box",
                worker_pools=[WorkerPool.objects.get(space=space, is_default=True)],
                endpoint=Endpoint(
                    communication_style="Ssh",
                    host=sshd.host,
                    port=sshd.port,
                    fingerprint=discover_host_key(sshd.host, sshd.port)[1],
                    account=account,
                ),
            ),
        )
        client = api_client(administrator)
        queued = client.post(
            "/api/tasks", {"Name": "Health", "Arguments": {"MachineIds": [worker.octopus_id]}}, format="json"
        )
        assert queued.status_code == 201, queued.json()
        task_id = queued.json()["Id"]
        task = wait_until(
            lambda: (t := client.get(f"/api/tasks/{task_id}").json())["IsCompleted"] and t,
            timeout=60,
            what="the health check task ending",
        )
        assert task["State"] == "Success", task
        assert Worker.objects.get(pk=worker.pk).health_status == "Healthy"
        raw = b"".join(client.get(f"/api/tasks/{task_id}/raw").streaming_content).decode()
        assert "Checking health of ssh-box" in raw and "Result: Healthy." in raw
        assert ServerTask.objects.get(pk=ServerTask.pk_from_octopus_id(task_id)).server_node
    finally:
        sshd.stop()


def test_queueing_a_health_check_needs_worker_edit(api_client, project_viewer, environment_manager, space):
    worker = workers.register_worker(
        actor=environment_manager,
        space=space,
        spec=WorkerSpec(
            name="w",
            worker_pools=[WorkerPool.objects.get(space=space, is_default=True)],
            endpoint=Endpoint(communication_style="TentaclePassive", uri="https://w:10933/", thumbprint="D" * 40),
        ),
    )
    body = {"Name": "Health", "Arguments": {"MachineIds": [worker.octopus_id]}}
    assert api_client(project_viewer).post("/api/tasks", body, format="json").status_code in (400, 403)
    assert api_client(environment_manager).post("/api/tasks", body, format="json").status_code == 201
    assert api_client(environment_manager).post("/api/tasks", {"Name": "Nonsense"}, format="json").status_code == 400
