"""Deployments against real workers: listening agents on loopback, the built-in worker, real Redis."""

from __future__ import annotations

import threading

import pytest

from deployments.models import Environment, Project, Step
from deployments.services import deploy
from deployments.services.orchestrator import run_server_task
from infrastructure.models import Worker, WorkerPool
from infrastructure.services import pools, workers
from infrastructure.services.certificates import current_server_certificate
from infrastructure.services.health import check_worker_health
from infrastructure.services.workers import Endpoint, WorkerSpec
from servertasks.models import ServerTask
from tests.agent.harness import Agent, free_port, tentacle


class Agents:
    """Starts listening agents registered as workers, and stops them all at the end of the test."""

    def __init__(self, tmp_path, space, administrator):
        self.tmp_path, self.space, self.administrator = tmp_path, space, administrator
        self.running: list[Agent] = []

    def start(self, name: str, pool_list: list[WorkerPool]) -> Worker:
        agent = Agent(self.tmp_path / name).create(listening_port=free_port())
        trusted = self.tmp_path / f"{name}-server.pem"
        trusted.write_text(current_server_certificate().certificate_pem)
        tentacle(agent.home, "configure", "--trust-pem", str(trusted))
        agent.start()
        self.running.append(agent)
        worker = workers.register_worker(
            actor=self.administrator,
            space=self.space,
            spec=WorkerSpec(
                name=name,
                worker_pools=pool_list,
                endpoint=Endpoint(
                    communication_style="TentaclePassive",
                    uri=f"https://127.0.0.1:{agent.port}/",
                    thumbprint=agent.thumbprint,
                ),
            ),
        )
        worker = check_worker_health(worker.pk)
        assert worker.health_status == "Healthy", worker.status_summary
        worker.agent = agent
        return worker

    def stop(self) -> None:
        for agent in self.running:
            agent.stop()


@pytest.fixture
def agents(transactional_db, tmp_path, space, administrator):
    running = Agents(tmp_path, space, administrator)
    yield running
    running.stop()


@pytest.fixture
def production(db, space) -> Environment:
    return Environment.objects.create(space=space, name="Production", sort_order=2)


@pytest.fixture
def staging(db, space) -> Environment:
    return Environment.objects.create(space=space, name="Staging", sort_order=1)


@pytest.fixture
def default_pool(db, space) -> WorkerPool:
    return WorkerPool.objects.get(space=space, is_default=True)


@pytest.fixture
def make_pool(db, space, administrator):
    return lambda name: pools.create_worker_pool(actor=administrator, space=space, name=name)


@pytest.fixture
def project(db, space) -> Project:
    return Project.objects.create(space=space, name="Hello", slug="hello")


def add_step(project: Project, name: str, body: str = "echo hi", **fields) -> Step:
    fields.setdefault(
        "location",
        Step.Location.WORKER
        if fields.get("worker_pool") or fields.get("worker_pool_variable")
        else Step.Location.SERVER,
    )
    return Step.objects.create(project=project, name=name, script_body=body, sort_order=project.steps.count(), **fields)


def deploy_and_run(actor, project: Project, environment: Environment) -> ServerTask:
    """Create a release, deploy it, and run the task here (the orchestrator Celery would run)."""
    release = deploy.create_release(actor=actor, project=project)
    task = deploy.deploy_release(actor=actor, release=release, environment=environment).task
    run_server_task(task.pk)
    task.refresh_from_db()
    return task


def run_in_thread(task_id: int) -> threading.Thread:
    def run():
        from django.db import connection

        try:
            run_server_task(task_id)
        finally:
            connection.close()  # as Celery's thread would, so the test database can be dropped

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def log_text(task: ServerTask) -> str:
    from servertasks.services import logstore

    return "\n".join(line.text for line in logstore.iter_lines(task_id=task.pk))
